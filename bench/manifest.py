"""Manifest throughput: read + validate, split into shards, and merge, on a 1,000,000-line manifest.

Prints lines/s for each step (goal: >= 300,000 lines/s each) and the peak RSS. "read + validate" is the streaming
first pass that `prepare` makes (validation and duplicate hashes, amela.manifest_scan); up to 2,000,000 lines the
in-memory read_manifest (`amela validate`) is timed too. Usage: .venv/bin/python bench/manifest.py [--lines N]
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from amela.manifest import dumps, read_manifest  # noqa: E402
from amela.manifest_scan import ManifestScan  # noqa: E402
from amela.paths import RunPaths  # noqa: E402
from amela.runner import (  # noqa: E402
    RunOptions,
    RunSpec,
    merge,
    prepare,
    shardio,  # noqa: E402
)
from amela.stage import Stage  # noqa: E402


@dataclass(frozen=True)
class NullConfig:
    pass


class NullStage(Stage):
    name = "null"
    config_cls = NullConfig


def make(path: str, n: int) -> None:
    with open(path, "wb") as fh:
        for i in range(n):
            fh.write(dumps({"audio_filepath": f"/corpus/spk{i % 997:03d}/utt{i:08d}.flac", "duration": 1 + i % 17 * 0.5,
                            "text": "the quick brown fox jumps over the lazy dog", "speaker": f"spk{i % 997}"}) + b"\n")


def timed(label: str, n: int, fn) -> float:
    t0 = time.perf_counter()
    fn()
    dt = time.perf_counter() - t0
    print(f"{label:<34s} {n / dt:>12,.0f} lines/s   ({dt:.2f} s)")
    return n / dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--shards", type=int, default=16)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="amela-bench-")
    try:
        manifest = os.path.join(tmp, "m.jsonl")
        make(manifest, args.lines)
        print(f"{args.lines:,} lines, {os.path.getsize(manifest) / 2**20:.0f} MiB, {args.shards} shards")
        if args.lines <= 2_000_000:  # it holds every record: 650 bytes each
            timed("read_manifest (in memory)", args.lines, lambda: read_manifest(manifest))
        read_rate = timed("read + validate (streaming)", args.lines, lambda: ManifestScan(manifest))
        paths = RunPaths(os.path.join(tmp, "run"))
        spec = RunSpec("__main__:NullStage", manifest, RunOptions(shards=args.shards), NullConfig())
        prep_rate = timed("prepare (read + validate + split)", args.lines, lambda: prepare(paths, spec))
        split_s = args.lines / prep_rate - args.lines / read_rate
        print(f"{'split alone (prepare - read)':<34s} {args.lines / split_s:>12,.0f} lines/s   ({split_s:.2f} s)")
        for i in range(args.shards):  # pretend every shard finished: its output is its input
            sp = paths.shard(i)
            shutil.copy(sp.input, sp.output)
            sp.stats.write_bytes(dumps({"shard": i, "items": shardio.count_lines(sp.input), "ok": 0, "failed": 0,
                                        "audio_seconds": 0.0, "started_at": 0.0, "finished_at": 1.0,
                                        "wall_seconds": 1.0}))
            sp.done.write_bytes(b"")
        timed("merge (k-way, input order)", args.lines, lambda: merge(paths, NullStage(NullConfig())))
        assert sum(1 for _ in open(paths.output("null"), "rb")) == args.lines
        print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MB")
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
