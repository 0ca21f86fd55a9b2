"""The one sha256 of a file (models, manifests, inputs), read in blocks so a multi-GB checkpoint never sits in memory."""
from __future__ import annotations

import hashlib
import os

BLOCK_BYTES = 1 << 22


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(BLOCK_BYTES), b""):
            h.update(block)
    return h.hexdigest()
