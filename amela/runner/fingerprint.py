"""What the input was when a run directory was prepared, so that a rerun never silently ignores a changed input.

A manifest (or a single audio file) is fingerprinted by size, mtime and a content hash: size and mtime unchanged
means unchanged without reading it; otherwise the hash decides (a `touch` is not a change). A directory is
fingerprinted by the list the scan produced (paths, and the paths it rejected): listing again is cheap, reading
every header again is not.
"""
from __future__ import annotations

import array
import hashlib
import os
from pathlib import Path

from ..hashing import file_sha256
from ..manifest import classify, list_directory

HASH = "sha256"


def _list_hash(paths: list[str]) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(os.fsencode(p) + b"\0")
    return h.hexdigest()


def _listing(path: Path) -> list[str]:
    files, problems = list_directory(path)
    return sorted(files) + sorted(f"rejected:{p.path}" for p in problems)


def fingerprint(path: str | os.PathLike, kind: str) -> dict:
    path = Path(path)
    if kind == "directory":
        listing = _listing(path)
        return {"kind": kind, "entries": len(listing), HASH: _list_hash(listing)}
    st = path.stat()
    return {"kind": kind, "size": st.st_size, "mtime_ns": st.st_mtime_ns, HASH: file_sha256(path)}


def changed(path: str | os.PathLike, recorded: dict) -> bool:
    """Whether the input differs from the one fingerprinted (`recorded`, from plan.json)."""
    path = Path(path)
    if not path.exists():
        return True
    kind = recorded.get("kind")
    if kind == "directory":
        if not path.is_dir():
            return True
        return _list_hash(_listing(path)) != recorded.get(HASH)
    if not path.is_file():
        return True
    st = path.stat()
    if st.st_size == recorded.get("size") and st.st_mtime_ns == recorded.get("mtime_ns"):
        return False
    return st.st_size != recorded.get("size") or file_sha256(path) != recorded.get(HASH)


def difference(path: str | os.PathLike, kind: str, planned_keys) -> tuple[int, int]:
    """(added, removed) records of the input now, compared with the planned ones: record_key of each for a
    directory or audio file, their sorted unique key hashes (manifest_scan.key_hash) for a manifest."""
    if kind == "directory":
        files, _ = list_directory(path)
        now = set(files)
        planned = {k[0] for k in planned_keys}
    elif kind == "audio":
        now, planned = {os.path.abspath(path)}, {k[0] for k in planned_keys}
    else:  # streamed, hashed: a 10 M-line manifest is compared in bounded memory (a hash collision can only
        # miscount this message by one; nothing is decided on it)
        import numpy as np

        from ..manifest_scan import key_hash

        hashes = array.array("q", (key_hash(key) for _, _, record, key in classify(str(path)) if record is not None))
        now = np.unique(np.frombuffer(hashes, dtype=np.int64) if hashes else np.zeros(0, np.int64))
        return (int(np.setdiff1d(now, planned_keys, assume_unique=True).size),
                int(np.setdiff1d(planned_keys, now, assume_unique=True).size))
    return len(now - planned), len(planned - now)
