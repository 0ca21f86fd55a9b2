"""Fingerprints: what a step's result depends on, so a rerun redoes only what changed.

A step's fingerprint hashes its stage, its resolved stage and run options (less those that do not change results),
its filter, the content of every file its options name (models, k-means, vocoders: their sha256), and its input's
fingerprint: the upstream step's fingerprint, or for a path on disk the runner's input fingerprint (a manifest's
size and content hash, a directory's scanned list). Model hashes are cached by (path, size, mtime) in
ROOT/.hashes.json, so a multi-GB model is hashed once.
"""
from __future__ import annotations

import hashlib
import json
import os

from ..config import to_dict
from ..hashing import file_sha256
from ..manifest import dumps, loads, write_bytes_atomic

VOLATILE_RUN_OPTIONS = ("workers",)  # how fast, not what: a change never reruns a step


class HashCache:
    """sha256 of files, remembered by (path, size, mtime_ns)."""

    def __init__(self, path: str | None):
        self.path = path
        self.entries: dict = {}
        if path and os.path.exists(path):
            try:
                self.entries = loads(open(path, "rb").read())
            except ValueError:  # a torn cache is only a cache
                self.entries = {}
        self.dirty = False

    def sha256(self, path: str) -> str:
        st = os.stat(path)
        key = f"{st.st_size}:{st.st_mtime_ns}"
        hit = self.entries.get(path)
        if hit and hit[0] == key:
            return hit[1]
        digest = file_sha256(path)
        self.entries[path] = [key, digest]
        self.dirty = True
        return digest

    def save(self) -> None:
        if self.path and self.dirty:
            write_bytes_atomic(self.path, dumps(self.entries))
            self.dirty = False


def input_fingerprint(path: str) -> dict:
    """The runner's own fingerprint of an input path (what `prepare` records in plan.json), or "missing"."""
    from pathlib import Path

    from ..runner import fingerprint
    from ..runner.plan import input_kind

    if not os.path.exists(path):
        return {"kind": "missing", "path": path}
    fp = fingerprint.fingerprint(path, input_kind(Path(path)))
    fp.pop("mtime_ns", None)  # a `touch` is not a change: the content hash decides
    return {"path": path, **fp}


def option_files(options: dict) -> dict[str, str]:
    """Every option value that names an existing file (a model, a k-means, a vocoder): {option: path}."""
    out = {}
    for key, value in options.items():
        if isinstance(value, str) and os.path.isabs(value) and os.path.isfile(value):
            out[key] = value
    return out


def step_fingerprint(step, input_fp: dict | str, cache: HashCache) -> tuple[str, dict]:
    """(hex digest, the parts it hashes) for a step given its input's fingerprint."""
    options = to_dict(step.options, old_names=True)  # renamed options hash as before: no rerun for a rename
    run = {k: v for k, v in to_dict(step.run).items() if k not in VOLATILE_RUN_OPTIONS}
    models = {key: cache.sha256(path) for key, path in sorted(option_files(options).items())}
    parts = {"stage": step.stage, "options": options, "run": run, "where": step.where, "models": models,
             "input": input_fp}
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest(), parts
