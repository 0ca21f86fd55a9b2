"""Report size and build time for a large VAD run (default 1,000,000 records; goal: < 5 MB, < 30 s).

The run directory is real in layout: `prepare` splits the manifest, each shard gets output/failure lines, stats,
attempts (some interrupted and requeued, one straggler) and its marker as the runner writes them, then the real
`merge` (with the VAD stage's CSV and plot) runs. Records carry synthetic VAD results (no model over a million files)
and point at the bundled sample audio, so the listening excerpts are real decodes.

Usage: .venv/bin/python bench/report.py [--records N] [--shards S] [--keep DIR]
"""
from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from amela.manifest import dumps, loads  # noqa: E402
from amela.paths import RunPaths  # noqa: E402
from amela.report import write_report  # noqa: E402
from amela.runner import RunOptions, RunSpec, merge, prepare, shardio  # noqa: E402
from amela.vad.config import VadConfig  # noqa: E402
from amela.vad.stage import VadStage  # noqa: E402

SAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "amela", "data", "samples")
# in amela/audio.py's wording, with the numbers that vary per file (the report groups failures by their wording)
ERRORS = ["{p}: not a readable audio file (Format not recognised)", "{p}: empty file (0 bytes)",
          "{p}: truncated or corrupt audio data: decoding stopped at {m} of the file, whose header promises {n} frames"]


def make_manifest(path: str, n: int) -> None:
    files = sorted(os.path.join(SAMPLES, f) for f in os.listdir(SAMPLES))
    rng = random.Random(0)
    with open(path, "wb") as fh:
        for i in range(n):
            dur = round(min(rng.lognormvariate(2.3, 1.0), 3600.0), 3)
            offset = round((i // len(files)) * 1e-6, 6)  # distinct spans: the manifest rejects duplicates
            fh.write(dumps({"audio_filepath": files[i % len(files)], "offset": offset, "duration": dur, "utt": i}) + b"\n")


def vad_result(r: dict, rng: random.Random) -> dict:
    dur = r["duration"]
    ratio = min(max(rng.betavariate(4, 2) if rng.random() > 0.05 else 0.0, 0.0), 1.0)
    n = 0 if ratio == 0 else max(1, min(int(dur / 4), 12))
    segs, t = [], 0.0
    for _ in range(n):
        s = t + rng.uniform(0, dur * (1 - ratio) / n)
        e = min(s + dur * ratio / n, dur)
        segs.append([round(s, 3), round(e, 3)])
        t = e
    speech = sum(e - s for s, e in segs)
    splits = [round(x, 3) for x in range(30, int(dur) - 10, 30)] if dur > 60 else []
    return {**r, "speech_ratio": round(speech / dur, 4), "speech_s": round(speech, 3), "speech_segment_count": n,
            "flagged_ns": n == 0, "flagged_1m": dur > 60, "speech_segments": segs, "split_points": splits}


def fill_shard(paths: RunPaths, i: int, rng: random.Random, t0: float) -> None:
    sp = paths.shard(i)
    ok = failed = 0
    audio_s = 0.0
    with open(sp.output, "wb") as out, open(sp.failures, "wb") as fail:
        for idx, body in shardio.iter_lines(sp.input):
            r = loads(body)
            if rng.random() < 0.003:
                msg = rng.choice(ERRORS).format(p=r["audio_filepath"], n=rng.randrange(10**6), m=rng.randrange(10**5))
                fail.write(shardio.encode(idx, {"index": idx, "stage": "vad", "error_type": "ItemError", "message": msg,
                                                "signal": None, "audio_filepath": r["audio_filepath"], "record": r}))
                failed += 1
            else:
                out.write(shardio.encode(idx, vad_result(r, rng)))
                ok += 1
                audio_s += r["duration"]
    start = t0 + rng.uniform(0, 600)
    wall = rng.uniform(1500, 1900) * (3 if i == 7 else 1)  # shard 7: a straggler
    rows = []
    if i % 10 == 3:  # preempted, then requeued by SLURM
        rows += [{"event": "start", "t": start, "host": f"node{i % 8}", "slurm_job": f"1000_{i}", "slurm_restart_count": 0},
                 {"event": "end", "t": start + 400, "outcome": "interrupted", "detail": "Interrupted: SIGTERM"}]
        start += 700
    rows += [{"event": "start", "t": start, "host": f"node{i % 8}", "slurm_job": f"1000_{i}",
              "slurm_restart_count": 1 if i % 10 == 3 else 0, "versions": {"python": "3.11.7", "amela": "0.1.0"}},
             {"event": "end", "t": start + wall, "outcome": "done"}]
    (sp.dir / "attempts.jsonl").write_bytes(b"".join(dumps(x) + b"\n" for x in rows))
    sp.stats.write_bytes(dumps({"shard": i, "items": ok + failed, "ok": ok, "failed": failed,
                                "audio_seconds": round(audio_s, 3), "started_at": start, "finished_at": start + wall,
                                "wall_seconds": wall, "worker_crashes": 0, "stage": {"cpu_s": wall * 3.5}}))
    sp.done.write_bytes(b"")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--shards", type=int, default=200)
    ap.add_argument("--keep", metavar="DIR", help="build the run here and keep it (default: a temporary directory)")
    args = ap.parse_args()
    tmp = args.keep or tempfile.mkdtemp(prefix="amela-bench-report-")
    os.makedirs(tmp, exist_ok=True)
    try:
        t = time.perf_counter()
        manifest = os.path.join(tmp, "in.jsonl")
        make_manifest(manifest, args.records)
        paths = RunPaths(os.path.join(tmp, "run"))
        prepare(paths, RunSpec("vad", manifest, RunOptions(shards=args.shards), VadConfig()))
        rng, t0 = random.Random(1), time.time() - 4 * 3600
        for i in range(args.shards):
            fill_shard(paths, i, rng, t0)
        merge(paths, VadStage(VadConfig()))
        size_mb = os.path.getsize(paths.output("vad")) / 1e6
        print(f"{args.records:,} records in {args.shards} shards, vad.jsonl {size_mb:.0f} MB "
              f"(run built in {time.perf_counter() - t:.0f} s)")
        t = time.perf_counter()
        out = write_report(paths.root)
        dt = time.perf_counter() - t
        print(f"report: {os.path.getsize(out) / 1e6:.2f} MB in {dt:.1f} s ({args.records / dt:,.0f} records/s); "
              f"goals: < 5 MB, < 30 s")
    finally:
        if not args.keep:
            shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
