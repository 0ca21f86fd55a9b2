#!/usr/bin/env python3
"""DNSMOS in the quality stage against the reference `speechmos.dnsmos.run`, on real speech (ten-vad-dev).

    .venv/bin/python bench/quality_eval.py [--data ../shared/data/ten-vad-dev] [--long 1] [--long-s 60]

Prints, in one run:
1. exactness: on every labelled file, the stage's scores at the reference hop (1 s) minus speechmos's (max |diff|);
2. speed: audio seconds per CPU second of the reference loop (speechmos, one file at a time, as its README calls it)
   and of the stage's scorer (one onnxruntime thread, windows batched) at the default hop and at the 1 s hop, on
   the real files and on `--long` files of `--long-s` seconds made by concatenating them (the stage's gain is the
   hop's, so it shows on long files), with the ratios;
3. the tolerance of the default hop: |score at 9.01 s hop - score at 1 s hop| per score (mean, max) on all files;
4. what batching windows through onnxruntime (--window-batch) gains in CPU time and costs in memory.
The stage's own audio path (decoding, measures) reads each file; nothing is copied into the repository.
"""
from __future__ import annotations

import argparse
import glob
import os
import sys
import tempfile
import time

import numpy as np
import soundfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from amela.quality.audio import read_span  # noqa: E402
from amela.quality.config import QualityConfig  # noqa: E402
from amela.quality.dnsmos import Dnsmos  # noqa: E402

DEFAULT_DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data", "ten-vad-dev")
KEYS = (("sig", "sig_mos"), ("bak", "bak_mos"), ("ovrl", "ovrl_mos"), ("p808", "p808_mos"))


def load(path: str) -> np.ndarray:
    audio, _ = read_span({"audio_filepath": path}, None, 0.999)
    return audio


def timed(fn, *args):
    cpu = time.process_time()
    out = fn(*args)
    return out, time.process_time() - cpu


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=DEFAULT_DATA)
    ap.add_argument("--long", type=int, default=1, help="long files made by concatenation")
    ap.add_argument("--long-s", type=float, default=60.0)
    args = ap.parse_args()
    files = sorted(glob.glob(os.path.join(args.data, "*.wav")))
    if not files:
        print(f"no .wav files in {args.data}", file=sys.stderr)
        return 2
    from speechmos import dnsmos as reference

    real = [load(f) for f in files]
    rng = np.random.default_rng(0)
    long_clips = []
    for _ in range(args.long):
        order = rng.permutation(len(real))
        clip = np.concatenate([real[i] for i in np.resize(order, 3 * len(order))])
        long_clips.append(clip[:int(args.long_s * 16000)])
    with tempfile.TemporaryDirectory() as tmp:  # the long files go through the stage's reader too
        for i, clip in enumerate(long_clips):
            soundfile.write(os.path.join(tmp, f"long{i}.wav"), clip, 16000, subtype="FLOAT")
            long_clips[i] = load(os.path.join(tmp, f"long{i}.wav"))

    scorer = Dnsmos(threads=1)
    default_hop = QualityConfig().hop_s
    reference.run(real[0], 16000)  # warm-up (session creation, librosa's first call) outside the timings
    scorer.score([real[0]], 1.0)

    groups = (("real files", real), (f"{args.long} x {args.long_s:g} s", long_clips))
    results = {}
    print(f"{'set':>14} {'audio s':>8} | {'reference':>10} {'hop 1 s':>9} {f'hop {default_hop:g} s':>10} "
          "| audio s per CPU s; ratio = stage / reference")
    for name, clips in groups:
        ref, ref_cpu = timed(lambda cs: [reference.run(c, 16000) for c in cs], clips)
        hop1, hop1_cpu = timed(scorer.score, clips, 1.0)
        hopd, hopd_cpu = timed(scorer.score, clips, default_hop)
        audio_s = sum(len(c) for c in clips) / 16000
        results[name] = (ref, hop1, hopd)
        print(f"{name:>14} {audio_s:8.1f} | {audio_s / ref_cpu:10.2f} {audio_s / hop1_cpu:9.2f} "
              f"{audio_s / hopd_cpu:10.2f} | ratio at 1 s {ref_cpu / hop1_cpu:.2f}x, at {default_hop:g} s "
              f"{ref_cpu / hopd_cpu:.2f}x")

    ref, hop1, _ = results["real files"]
    print(f"\nexactness at the 1 s hop on {len(files)} files (stage - speechmos):")
    for ours, theirs in KEYS:
        diff = np.array([getattr(s, ours) - float(r[theirs]) for s, r in zip(hop1, ref)])
        print(f"  {ours:5s} max |diff| {np.abs(diff).max():.2e}  {'ok' if np.abs(diff).max() <= 1e-4 else 'OVER 1e-4'}")

    print(f"\ndefault hop ({default_hop:g} s) against the 1 s hop, all files:")
    pairs = [(a, b) for name in results for a, b in zip(results[name][2], results[name][1])]
    for ours, _ in KEYS:
        diff = np.abs([getattr(a, ours) - getattr(b, ours) for a, b in pairs])
        print(f"  {ours:5s} mean |diff| {diff.mean():.3f}  max {diff.max():.3f}")
    windows = [(a.windows, b.windows) for a, b in pairs]
    print(f"  windows scored: {sum(w[0] for w in windows)} at {default_hop:g} s, {sum(w[1] for w in windows)} at 1 s")
    window_batches(long_clips[0] if long_clips else real[0])
    return 0


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) / 1024 for line in fh if line.startswith("VmRSS:"))


def window_batches(clip: np.ndarray) -> None:
    """--window-batch: CPU seconds per window and the memory onnxruntime keeps, per windows per call."""
    print("\nwindows per onnxruntime call (one thread): CPU s per window, memory kept by the sessions")
    for size in (1, 2, 4, 8):
        before = rss_mb()
        scorer = Dnsmos(threads=1, window_batch=size)
        scorer.score([clip[:16000 * 18]], 9.01 / size)  # warm-up
        scores, cpu = timed(scorer.score, [clip[:16000 * 30]], 9.01 / size)  # about `size` windows per 9 s
        print(f"  {size:2d}: {cpu / scores[0].windows:.3f} CPU s per window, +{rss_mb() - before:.0f} MB")
        del scorer


if __name__ == "__main__":
    raise SystemExit(main())
