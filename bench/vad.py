#!/usr/bin/env python3
"""VAD speed: the stage end to end against the native library's own limit, in one run on the same audio.

    .venv/bin/python bench/vad.py [--minutes 20] [--short-files 2000] [--source DIR]

Prints (figures only; nothing is asserted):
  (a) the limit: TEN-VAD's native function called frame by frame on pre-loaded int16 frames, one core
      (plus the ten_vad wrapper's process() on the same frames, to show its per-frame cost);
  (b) the stage end to end (`python -m amela.vad`: scan, decode, resample, VAD, statistics, writing) with 1 and 2
      workers, on 16 kHz WAV and on 48 kHz stereo FLAC copies; (b)/(a) per core; 2 workers / 1 worker;
  (c) 2,000 short files (1-3 s) through the stage against the limit;
  (d) a reimplementation of the original AMELA approach (scipy.io.wavfile read, a new TenVad per file, the
      wrapper's process() per frame) on the same files;
  peak RSS per worker (from the run's stats) and of a bare interpreter with the same imports.
Audio: the ten-vad-dev recordings when present (real speech), else the bundled samples, concatenated into ~60 s
files in a temporary directory.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np
import soundfile
import soxr

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)
from amela.vad.native import NativeVad, load_library  # noqa: E402

SR = 16000
HOP = 256
DEV = os.path.join(ROOT, "..", "shared", "data", "ten-vad-dev")


def source_audio(source: str | None) -> np.ndarray:
    """All source recordings as one 16 kHz int16 array."""
    if source is None:
        source = DEV if glob.glob(os.path.join(DEV, "*.wav")) else os.path.join(ROOT, "amela", "data", "samples")
    parts = []
    for path in sorted(glob.glob(os.path.join(source, "*"))):
        try:
            audio, sr = soundfile.read(path, dtype="float32", always_2d=True)
        except Exception:
            continue
        parts.append(soxr.resample(audio.mean(axis=1), sr, SR) if sr != SR else audio.mean(axis=1))
    if not parts:
        raise SystemExit(f"no audio in {source}")
    print(f"source audio: {len(parts)} recordings from {os.path.abspath(source)}")
    return np.clip(np.rint(np.concatenate(parts) * 32768), -32768, 32767).astype(np.int16)


def build_corpus(root: str, audio: np.ndarray, minutes: float, short_files: int) -> dict[str, list[str]]:
    rng = np.random.default_rng(0)
    dirs = {k: os.path.join(root, k) for k in ("wav16k", "flac48k", "short")}
    for d in dirs.values():
        os.makedirs(d)
    files: dict[str, list[str]] = {k: [] for k in dirs}
    n_long = max(1, int(round(minutes)))
    for i in range(n_long):  # ~60 s each, starting at different places of the looped source
        start = int(rng.integers(0, len(audio)))
        x = np.roll(audio, -start)
        x = np.tile(x, int(np.ceil(60 * SR / len(x))))[: int(rng.uniform(55, 65) * SR)]
        path = os.path.join(dirs["wav16k"], f"long_{i:03d}.wav")
        soundfile.write(path, x, SR, subtype="PCM_16")
        files["wav16k"].append(path)
        y = soxr.resample(x.astype(np.float32) / 32768, SR, 48000)
        path48 = os.path.join(dirs["flac48k"], f"long_{i:03d}.flac")
        soundfile.write(path48, np.stack([y, y], axis=1), 48000, subtype="PCM_16")
        files["flac48k"].append(path48)
    for i in range(short_files):
        start = int(rng.integers(0, len(audio) - 3 * SR))
        x = audio[start: start + int(rng.uniform(1, 3) * SR)]
        path = os.path.join(dirs["short"], f"short_{i:05d}.wav")
        soundfile.write(path, x, SR, subtype="PCM_16")
        files["short"].append(path)
    return files


class Rate:
    """Audio seconds per second of wall clock and per CPU second (the CPU figure holds on a busy machine)."""

    def __init__(self, audio_s: float, wall_s: float, cpu_s: float):
        self.audio_s, self.wall, self.cpu = audio_s, audio_s / wall_s, audio_s / cpu_s

    def __str__(self) -> str:
        return f"{self.wall:7.1f} audio s/s wall, {self.cpu:7.1f} per CPU s"


class Clock:
    def __enter__(self):
        self.t, self.c = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall_s, self.cpu_s = time.perf_counter() - self.t, time.process_time() - self.c


def native_limit(arrays: list[np.ndarray]) -> tuple[Rate, int]:
    """Direct native calls with a fresh handle per file, one thread, on frames already in memory."""
    vad = NativeVad(load_library(), HOP, 0.5)
    frames = 0
    with Clock() as clock:
        for x in arrays:
            frames += len(vad.run(x)[1])
    return Rate(sum(len(x) for x in arrays) / SR, clock.wall_s, clock.cpu_s), frames


def wrapper_rate(arrays: list[np.ndarray]) -> Rate:
    from ten_vad import TenVad

    with Clock() as clock:
        for x in arrays:
            vad = TenVad(HOP, 0.5)
            for i in range(len(x) // HOP):
                vad.process(x[i * HOP:(i + 1) * HOP])
    return Rate(sum(len(x) for x in arrays) / SR, clock.wall_s, clock.cpu_s)


def original_amela(paths: list[str]) -> Rate:
    """The original approach: scipy read, new TenVad per file, wrapper process() per frame, segments in Python."""
    from scipy.io import wavfile
    from ten_vad import TenVad

    clock = Clock().__enter__()
    audio_s = 0.0
    for path in paths:
        sr, data = wavfile.read(path)
        audio_s += len(data) / sr
        vad = TenVad(HOP, 0.5)
        flags = [vad.process(data[i * HOP:(i + 1) * HOP])[1] for i in range(len(data) // HOP)]
        segments, start = [], None
        for i, f in enumerate(flags + [0]):
            if f == 1 and start is None:
                start = i
            elif f != 1 and start is not None:
                segments.append((start * HOP / sr, i * HOP / sr))
                start = None
    clock.__exit__()
    return Rate(audio_s, clock.wall_s, clock.cpu_s)


def stage_run(inputs: str, run_dir: str, workers: int) -> dict:
    cmd = [sys.executable, "-m", "amela.vad", inputs, "-o", run_dir, "--workers", str(workers), "--no-progress"]
    env = {**os.environ, "AMELA_LOG_LEVEL": "WARNING", "PYTHONPATH": ROOT}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # the command and its (reaped) workers
    if proc.returncode != 0:
        raise SystemExit(f"stage run failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    stats = json.load(open(os.path.join(run_dir, "stats.json")))
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    stats["rate"] = Rate(stats["audio_seconds"], wall, cpu)
    stats["run_rate"] = Rate(stats["audio_seconds"], stats["wall_seconds"], cpu)
    stage = stats["per_shard"][0]["stage"]  # one shard: its workers' own counters
    stats["worker_rate"] = Rate(stage["audio_s"], stats["wall_seconds"], stage["cpu_s"])
    return stats


def bare_rss_mb() -> float:
    code = ("import numpy, soundfile, soxr, amela.vad.stage, amela.audio, amela.vad.segments;"
            "import amela.runtime; print(amela.runtime.peak_rss_mb())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ,
                                                                                           "PYTHONPATH": ROOT})
    return float(out.stdout.strip())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="VAD stage speed against the native limit")
    parser.add_argument("--minutes", type=float, default=20, help="long-file corpus size (~60 s files)")
    parser.add_argument("--short-files", type=int, default=2000)
    parser.add_argument("--source", default=None, help="directory of recordings to build the corpus from")
    args = parser.parse_args(argv)
    audio = source_audio(args.source)
    print(f"cores available: {len(os.sched_getaffinity(0))}; hop {HOP}, threshold 0.5")
    with tempfile.TemporaryDirectory(prefix="amela-vad-bench-") as tmp:
        files = build_corpus(tmp, audio, args.minutes, args.short_files)
        arrays = [soundfile.read(p, dtype="int16")[0] for p in files["wav16k"]]
        short_arrays = [soundfile.read(p, dtype="int16")[0] for p in files["short"]]
        corpus_s = sum(len(x) for x in arrays) / SR
        print(f"corpus: {len(arrays)} files, {corpus_s / 60:.1f} min (16 kHz WAV, and 48 kHz stereo FLAC copies); "
              f"{len(short_arrays)} short files, {sum(len(x) for x in short_arrays) / SR / 60:.1f} min\n")

        print(f"load average before: {os.getloadavg()[0]:.2f}")
        limit, frames = native_limit(arrays)
        print(f"(a) native limit, 1 core:               {limit}  ({1e6 * corpus_s / limit.cpu / frames:.1f} "
              f"CPU us per {HOP}-sample frame)")
        wrap = wrapper_rate(arrays)
        print(f"    ten_vad wrapper, same frames:       {wrap}  ({wrap.cpu / limit.cpu:.2f} of the limit)")
        short_limit, _ = native_limit(short_arrays)
        print(f"    native limit on the short files:    {short_limit}\n")

        one = stage_run(os.path.dirname(files["wav16k"][0]), os.path.join(tmp, "run1"), 1)
        two = stage_run(os.path.dirname(files["wav16k"][0]), os.path.join(tmp, "run2"), 2)
        flac = stage_run(os.path.dirname(files["flac48k"][0]), os.path.join(tmp, "run3"), 1)
        short = stage_run(os.path.dirname(files["short"][0]), os.path.join(tmp, "run4"), 1)
        print("(b) the stage end to end. Per core = audio per CPU second of the workers' process() calls (decode,")
        print("    resample, VAD, statistics); 'whole command' adds interpreter start-up, scan, merge, CSV and plot")
        print("    (fixed costs) and the wall clock of `python -m amela.vad DIR`:")
        for label, st in (("16 kHz WAV, 1 worker", one), ("16 kHz WAV, 2 workers", two),
                          ("48k stereo FLAC, 1 worker", flac), ("(c) 2,000 short files, 1 worker", short)):
            w, c = st["worker_rate"], st["rate"]
            print(f"    {label:<32} per core {w.cpu:6.1f} audio s/CPU s = {w.cpu / limit.cpu:.2f} of (a)"
                  f"{f' ({w.cpu / short_limit.cpu:.2f} of the short-file limit)' if st is short else ''}; "
                  f"whole command {c.cpu:6.1f}/CPU s = {c.cpu / limit.cpu:.2f} of (a), wall {c.wall:6.1f} audio s/s")
        print(f"    2 workers / 1 worker (wall):      {two['rate'].wall / one['rate'].wall:.2f}x "
              f"(shard processing wall only: {two['run_rate'].wall / one['run_rate'].wall:.2f}x)\n")

        orig = original_amela(files["wav16k"])
        print(f"(d) original AMELA approach, 1 core:   {orig}  ({orig.cpu / limit.cpu:.2f} of the limit; "
              f"stage 1 worker is {one['worker_rate'].cpu / orig.cpu:.2f}x per CPU s)")
        orig_short = original_amela(files["short"])
        print(f"    original AMELA, short files:       {orig_short}  (stage is "
              f"{short['worker_rate'].cpu / orig_short.cpu:.2f}x per CPU s)\n")

        peak = lambda st: st["per_shard"][0]["stage"]["peak_rss_mb_max"]  # noqa: E731
        print(f"peak RSS per worker (VmHWM): 16k WAV {peak(one):.0f} MB, 2 workers {peak(two):.0f} MB, "
              f"48k FLAC {peak(flac):.0f} MB, short files {peak(short):.0f} MB; "
              f"bare interpreter with the same imports: {bare_rss_mb():.0f} MB")
        print(f"load average after: {os.getloadavg()[0]:.2f} on {len(os.sched_getaffinity(0))} cores")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
