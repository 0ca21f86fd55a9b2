"""The runner's internal line format: `INDEX<TAB>JSON\n`, one record per line, appended with one write per record.

The index is the record's position in the input, so merging restores input order without parsing the JSON, and
resuming knows what is done. A crash can only tear the last line; `recover()` cuts it off.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from ..manifest import atomic_open, dumps, loads


def encode(idx: int, obj) -> bytes:
    return b"%d\t%s\n" % (idx, dumps(obj))


def iter_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """(index, raw JSON bytes) of every complete line; a missing file yields nothing."""
    try:
        fh = open(path, "rb")
    except FileNotFoundError:
        return
    with fh:
        for line in fh:
            if not line.endswith(b"\n"):
                break  # torn tail: ignored here, cut by recover() before appending
            idx, _, body = line.partition(b"\t")
            yield int(idx), body[:-1]


def iter_records(path: Path) -> Iterator[tuple[int, dict]]:
    for idx, body in iter_lines(path):
        yield idx, loads(body)


def recover(path: Path) -> int:
    """Cut a torn last line (no newline, or not valid JSON) off `path`; returns the number of bytes dropped."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return 0
    if size == 0:
        return 0
    with open(path, "rb+") as fh:
        data = fh.read()
        keep = data.rfind(b"\n") + 1 if not data.endswith(b"\n") else len(data)
        if keep:
            start = data.rfind(b"\n", 0, keep - 1) + 1
            try:
                loads(data[start:keep - 1].partition(b"\t")[2])
            except Exception:  # noqa: BLE001 - a complete-looking but corrupt line is torn too
                keep = start
        if keep != size:
            fh.truncate(keep)
            fh.flush()
            os.fsync(fh.fileno())
    return size - keep


def sort_file(path: Path) -> int:
    """Rewrite `path` sorted by index (stable), atomically; returns the line count."""
    lines = [line for line in _raw_lines(path)]
    lines.sort(key=lambda line: int(line.partition(b"\t")[0]))
    with atomic_open(path, "wb") as fh:
        fh.writelines(lines)
    return len(lines)


def _raw_lines(path: Path) -> Iterator[bytes]:
    try:
        with open(path, "rb") as fh:
            yield from (line for line in fh if line.endswith(b"\n"))
    except FileNotFoundError:
        return


def keep_only(path: Path, indices: set[int]) -> int:
    """Rewrite `path` (atomically) without lines whose index is not in `indices`; returns how many were dropped."""
    lines = list(_raw_lines(path))
    kept = [line for line in lines if int(line.partition(b"\t")[0]) in indices]
    if len(kept) != len(lines):
        with atomic_open(path, "wb") as fh:
            fh.writelines(kept)
    return len(lines) - len(kept)


def count_lines(path: Path) -> int:
    return sum(1 for _ in _raw_lines(path))


class Appender:
    """Append lines to a file, one unbuffered write per record (a signal can't split a record across writes)."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.fh = open(path, "ab", buffering=0)

    def write(self, idx: int, obj) -> None:
        self.fh.write(encode(idx, obj))

    def close(self) -> None:
        self.fh.close()

    def __enter__(self) -> Appender:
        return self

    def __exit__(self, *_) -> None:
        self.close()
