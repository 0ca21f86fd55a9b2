"""Binary side outputs of a stage, packed per shard: `<name>.bin` holds every item's bytes back to back, `<name>.idx`
one line per item in the runner's line format (`INDEX<TAB>JSON`, JSON = pos, size, audio_filepath, offset and the
stage's meta). One pair of files per shard, never one file per item: cluster file systems suffer from millions of
small files.

Commit order per item: the bytes (flushed), then the index line, then (in shard.py) the output line. Resuming keeps
the index lines of committed items only and cuts the .bin after the last of them, so a torn write costs nothing.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from ..paths import RunPaths, ShardPaths
from . import shardio


class BlobWriter:
    def __init__(self, data_path: Path, index_path: Path, committed: set[int]):
        shardio.recover(index_path)
        shardio.keep_only(index_path, committed)
        end = max((e["pos"] + e["size"] for _, e in shardio.iter_records(index_path)), default=0)
        data_path.parent.mkdir(parents=True, exist_ok=True)
        with open(data_path, "ab") as fh:
            if fh.tell() != end:
                fh.truncate(end)
        self.data = open(data_path, "ab")
        self.index = shardio.Appender(index_path)

    def write(self, idx: int, record: dict, blob) -> None:
        pos = self.data.tell()
        self.data.write(blob.data)
        self.data.flush()
        entry = {"pos": pos, "size": len(blob.data), "audio_filepath": record.get("audio_filepath"),
                 "offset": record.get("offset", 0)}
        entry.update(blob.meta)
        self.index.write(idx, entry)

    def close(self) -> None:
        self.data.close()
        self.index.close()


def iter_index(paths: RunPaths, name: str) -> Iterator[tuple[ShardPaths, int, dict]]:
    """(shard, input index, index entry) for every stored blob of the run, shard by shard."""
    for shard_dir in sorted(paths.shards_dir.glob("[0-9]*")):
        sp = ShardPaths(shard_dir)
        for idx, entry in shardio.iter_records(sp.blob_index(name)):
            yield sp, idx, entry


def read(data_path: Path, entry: dict) -> bytes:
    with open(data_path, "rb") as fh:
        fh.seek(entry["pos"])
        data = fh.read(entry["size"])
    if len(data) != entry["size"]:
        raise OSError(f"{data_path}: {entry['size']} bytes expected at {entry['pos']}, found {len(data)}")
    return data


def size_bytes(paths: RunPaths, name: str) -> int:
    return sum(os.path.getsize(p) for p in paths.shards_dir.glob(f"*/{name}.bin"))
