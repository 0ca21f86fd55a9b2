#!/usr/bin/env python3
"""Resegmenting from stored probabilities against running the model again, in one run on the same corpus.

    .venv/bin/python bench/vad_resegment.py [--minutes 30] [--source DIR] [--preset asr]

Prints (figures only; nothing is asserted):
  - a full VAD run with --save-probs (uint8 and float32) and `amela vad resegment` of it with the same options:
    whole-command wall time, shard-processing time (the runner's task seconds) and the stage's CPU time in
    process(); each as a ratio full / resegment;
  - whether the float32 resegment's outputs are byte-identical to the full run's;
  - uint8 vs float32 frame decisions: agreement over every frame at the default threshold and the preset's;
  - storage: bytes of probabilities per hour of audio, and per 1,000 hours.
Audio: the ten-vad-dev recordings (real speech), looped into ~60 s files in a temporary directory.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import soundfile

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)
from amela.paths import RunPaths  # noqa: E402
from amela.runner.blobs import iter_index, read, size_bytes  # noqa: E402
from amela.vad.probs import decode  # noqa: E402
from amela.vad.segments import decide  # noqa: E402
from amela.vad.stage import PRESETS  # noqa: E402

SR = 16000
DEV = os.path.join(ROOT, "..", "shared", "data", "ten-vad-dev")


def build_corpus(root: str, source: str, minutes: float) -> float:
    parts = [soundfile.read(p, dtype="int16")[0] for p in sorted(glob.glob(os.path.join(source, "*.wav")))]
    if not parts:
        raise SystemExit(f"no .wav in {source}")
    audio = np.concatenate(parts)
    rng = np.random.default_rng(0)
    total = 0.0
    for i in range(max(1, int(round(minutes)))):
        x = np.roll(audio, -int(rng.integers(0, len(audio))))
        x = np.tile(x, int(np.ceil(65 * SR / len(x))))[: int(rng.uniform(55, 65) * SR)]
        soundfile.write(os.path.join(root, f"long_{i:03d}.wav"), x, SR, subtype="PCM_16")
        total += len(x) / SR
    return total


def amela(*args) -> float:
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "amela", *map(str, args), "--workers", "1", "--no-progress"],
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": ROOT})
    if proc.returncode:
        raise SystemExit(proc.stdout + proc.stderr)
    return time.perf_counter() - t


def figures(run: str, wall_s: float) -> dict:
    stats = json.load(open(os.path.join(run, "stats.json")))
    return {"wall": wall_s, "task": stats["task_seconds"], "cpu": stats["per_shard"][0]["stage"]["cpu_s"]}


def flags(run: str, threshold: float, neg) -> dict:
    return {(e["audio_filepath"], e["offset"]): decide(decode(read(sp.blob("probs"), e), e["dtype"]), threshold, neg)
            for sp, _, e in iter_index(RunPaths(run), "probs")}


def steady_state(tmp: str, preset: str, audio_s: float, rows: dict) -> None:
    """Per-file work without fixed costs (interpreter and pool start-up, first-call imports, merge, plot), which a
    20-minute corpus cannot amortise and a 10,000-hour one does: ResegmentStage.process() in this process, repeated
    over the stored files, against the full run's stage CPU per audio second."""
    from amela.config import from_dict
    from amela.vad.config import VadConfig
    from amela.vad.resegment import ResegmentStage
    from amela.vad.stored import stored_records

    for dtype in ("uint8", "float32"):
        records = list(stored_records(RunPaths(os.path.join(tmp, f"full_{dtype}"))))
        stage = ResegmentStage(from_dict(VadConfig, PRESETS[preset]))
        stage.process(records[:2])  # imports
        reps, cpu = 0, 0.0
        while cpu < 2.0:
            t = time.process_time()
            stage.process(records)
            cpu += time.process_time() - t
            reps += 1
        reseg_rate = reps * audio_s / cpu
        model_rate = audio_s / rows[f"full run, --save-probs {dtype}"]["cpu"]
        print(f"steady state ({dtype}): resegment {reseg_rate:,.0f} audio s per CPU s, model run "
              f"{model_rate:,.0f}: ratio {reseg_rate / model_rate:.0f}x")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--source", default=DEV)
    parser.add_argument("--preset", default="asr", choices=sorted(PRESETS))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        corpus = os.path.join(tmp, "corpus")
        os.makedirs(corpus)
        audio_s = build_corpus(corpus, args.source, args.minutes)
        print(f"corpus: {audio_s / 60:.1f} min of real speech in ~60 s files (from {os.path.abspath(args.source)}); "
              f"options: --preset {args.preset}; 1 worker")
        opts = ["--preset", args.preset]
        rows = {}
        for dtype in ("uint8", "float32"):
            full, reseg = os.path.join(tmp, f"full_{dtype}"), os.path.join(tmp, f"reseg_{dtype}")
            rows[f"full run, --save-probs {dtype}"] = figures(full, amela("run", "vad", corpus, "-o", full,
                                                                         "--save-probs", dtype, *opts))
            rows[f"resegment from {dtype}"] = figures(reseg, amela("vad", "resegment", full, "-o", reseg, *opts))
        print(f"{'':34s} {'command s':>10s} {'shard s':>9s} {'stage CPU s':>12s}")
        for name, r in rows.items():
            print(f"{name:34s} {r['wall']:10.2f} {r['task']:9.3f} {r['cpu']:12.3f}")
        for dtype in ("uint8", "float32"):
            f, r = rows[f"full run, --save-probs {dtype}"], rows[f"resegment from {dtype}"]
            print(f"ratio full / resegment ({dtype}): whole command {f['wall'] / r['wall']:.1f}x, shard processing "
                  f"{f['task'] / r['task']:.0f}x, stage CPU {f['cpu'] / max(r['cpu'], 1e-6):.0f}x")
        steady_state(tmp, args.preset, audio_s, rows)
        same = all(open(os.path.join(tmp, "full_float32", n), "rb").read()
                   == open(os.path.join(tmp, "reseg_float32", n), "rb").read()
                   for n in ("vad.jsonl", "vad_segments.jsonl", "vad_packed.jsonl", "vad_stats.csv"))
        print(f"float32 resegment outputs byte-identical to the full run: {same}")
        preset = PRESETS[args.preset]
        for label, thr, neg in (("threshold 0.5", 0.5, None),
                                (f"{args.preset}: threshold 0.5, neg {preset.get('neg_threshold')}", 0.5,
                                 preset.get("neg_threshold")),
                                ("threshold 0.3", 0.3, None), ("threshold 0.7", 0.7, None)):
            a, b = flags(os.path.join(tmp, "full_uint8"), thr, neg), flags(os.path.join(tmp, "full_float32"), thr, neg)
            same_n = sum(int((a[k] == b[k]).sum()) for k in b)
            total = sum(len(v) for v in b.values())
            print(f"uint8 vs float32 frame decisions, {label}: {100 * same_n / total:.3f}% of {total} frames agree")
        for dtype in ("uint8", "float32"):
            per_h = size_bytes(RunPaths(os.path.join(tmp, f"full_{dtype}")), "probs") / (audio_s / 3600)
            print(f"storage {dtype}: {per_h / 1e6:.2f} MB per hour of audio, {per_h * 1000 / 1e9:.2f} GB per 1,000 h")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
