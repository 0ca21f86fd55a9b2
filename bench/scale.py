"""The runner at corpus scale: prepare, a no-op stage over every shard, merge and status on an N-record manifest.

Each step runs in a fresh process of its own, so the peak RSS printed is that step's alone (what a login node or a
merge job would see). Prints, per step, wall seconds, records/s and peak RSS; the last line is

    scale: records=N prepare_rss_mb=X merge_rss_mb=Y status_s=Z records_per_s=W

where W is N over the summed wall time of all four steps. Usage:

    .venv/bin/python bench/scale.py --records 1000000 [--shards 64] [--workers 2] [--keep DIR]

`--status-shards K` measures only `amela status` on a run of K shards (2 records each, all finished, their
output, stats and DONE written as a finished shard leaves them): the first call reads every shard's figures, the
next ones come from RUN_DIR/.status_cache.json. Prints `status_shards: shards=K first_s=X cached_s=Y lines=L`.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from amela.stage import Stage  # noqa: E402

STAGE = "scale:NoopStage"  # importable by spawned workers: the bench folder is put on their PYTHONPATH


@dataclass(frozen=True)
class NoopConfig:
    pass


class NoopStage(Stage):
    """Returns every record as it came: the runner's own cost, nothing else."""

    name = "noop"
    config_cls = NoopConfig

    def process(self, batch):
        return [{} for _ in batch]


def make_manifest(path: str, n: int) -> None:
    from amela.manifest import dumps

    with open(path, "wb", buffering=1 << 20) as fh:
        for i in range(n):  # segment-like records: many per file, as VAD segments of a large corpus are
            fh.write(dumps({"audio_filepath": f"/corpus/spk{i % 997:03d}/rec{i // 50:08d}.flac",
                            "offset": (i % 50) * 7.5, "duration": 1 + i % 13 * 0.5, "speaker": f"spk{i % 997}"})
                     + b"\n")


def step(name: str, run_dir: str, args) -> dict:
    """One step, in this process (called in a child): returns its wall time and peak RSS."""
    from amela.paths import RunPaths
    from amela.runner import RunOptions, RunSpec, load_spec, merge, prepare, run_status

    paths = RunPaths(run_dir)
    t0 = time.perf_counter()
    if name == "prepare":
        paths.root.mkdir(parents=True, exist_ok=True)
        prepare(paths, RunSpec(STAGE, args.manifest, RunOptions(shards=args.shards), NoopConfig()))
    elif name == "shards":
        from amela.executors.local import run_local

        run_local(paths, load_spec(paths), args.workers, show_progress=False)
    elif name == "merge":
        merge(paths, NoopStage(NoopConfig()))
    elif name == "status":
        st = run_status(paths)
        assert st.complete and st.merged, "status: the run should be complete and merged"
    wall_s = time.perf_counter() - t0
    return {"wall_s": wall_s, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def run_child(name: str, run_dir: str, args) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([HERE, os.path.dirname(HERE), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, os.path.abspath(__file__), "--step", name, "--run-dir", run_dir, "--manifest", args.manifest,
           "--shards", str(args.shards), "--workers", str(args.workers), "--records", str(args.records)]
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def status_cli_s(run_dir: str) -> float:
    """`amela status RUN_DIR` as a user runs it: interpreter start-up included."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "amela.cli", "status", run_dir], check=True, capture_output=True,
                   env={**os.environ, "PYTHONPATH": os.pathsep.join([HERE, os.path.dirname(HERE)])})
    return time.perf_counter() - t0


def status_shards(k: int, tmp: str) -> None:
    from amela.manifest import dumps
    from amela.paths import RunPaths
    from amela.runner import RunOptions, RunSpec, prepare

    manifest = os.path.join(tmp, "small.jsonl")
    make_manifest(manifest, 2 * k)
    paths = RunPaths(os.path.join(tmp, "status_run"))
    t0 = time.perf_counter()
    prepare(paths, RunSpec(STAGE, manifest, RunOptions(shards=k), NoopConfig()))
    print(f"prepare of {k:,} shards: {time.perf_counter() - t0:.1f} s")
    for i in range(k):
        sp = paths.shard(i)
        sp.output.write_bytes(sp.input.read_bytes())
        sp.stats.write_bytes(dumps({"shard": i, "items": 2, "ok": 2, "failed": 0, "audio_seconds": 3.0,
                                    "started_at": 0.0, "finished_at": 1.0, "wall_seconds": 1.0}))
        sp.done.write_bytes(b"")
    first = status_cli_s(str(paths.root))
    cached = min(status_cli_s(str(paths.root)) for _ in range(3))
    out = subprocess.run([sys.executable, "-m", "amela.cli", "status", str(paths.root)], capture_output=True,
                         text=True, env={**os.environ, "PYTHONPATH": os.pathsep.join([HERE, os.path.dirname(HERE)])})
    print(out.stdout, end="")
    print(f"status_shards: shards={k} first_s={first:.2f} cached_s={cached:.2f} lines={len(out.stdout.splitlines())}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--shards", type=int, default=64)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--keep", help="build in this directory and keep it (default: a temporary one, removed)")
    ap.add_argument("--status-shards", type=int, help="only time `amela status` on a finished run of this many shards")
    ap.add_argument("--step", help=argparse.SUPPRESS)
    ap.add_argument("--run-dir", help=argparse.SUPPRESS)
    ap.add_argument("--manifest", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.step:
        print(json.dumps(step(args.step, args.run_dir, args)))
        return
    tmp = args.keep or tempfile.mkdtemp(prefix="amela-scale-")
    os.makedirs(tmp, exist_ok=True)
    try:
        if args.status_shards:
            status_shards(args.status_shards, tmp)
            return
        args.manifest = os.path.join(tmp, "manifest.jsonl")
        t0 = time.perf_counter()
        make_manifest(args.manifest, args.records)
        print(f"manifest: {args.records:,} records, {os.path.getsize(args.manifest) / 2**20:,.0f} MiB "
              f"({time.perf_counter() - t0:.1f} s to write); {args.shards} shards, {args.workers} workers")
        run_dir = os.path.join(tmp, "run")
        figures = {}
        for name in ("prepare", "shards", "merge", "status"):
            f = figures[name] = run_child(name, run_dir, args)
            print(f"{name:<8s} {f['wall_s']:8.2f} s  {args.records / f['wall_s']:>12,.0f} records/s  "
                  f"peak RSS {f['rss_mb']:8.1f} MB")
        cli_s = status_cli_s(run_dir)
        print(f"`amela status` command: {cli_s:.2f} s (interpreter start-up included)")
        total_s = sum(f["wall_s"] for f in figures.values())
        print(f"scale: records={args.records} prepare_rss_mb={figures['prepare']['rss_mb']:.0f} "
              f"merge_rss_mb={figures['merge']['rss_mb']:.0f} status_s={cli_s:.2f} "
              f"records_per_s={args.records / total_s:.0f}")
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
