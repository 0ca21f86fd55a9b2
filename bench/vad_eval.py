#!/usr/bin/env python3
"""VAD accuracy on real labelled speech: the stage against TEN-VAD's own test-set labels, and format robustness.

    .venv/bin/python bench/vad_eval.py [--data ../shared/data/ten-vad-dev] [--threshold 0.5]

Prints, on the labelled files (LibriSpeech, GigaSpeech, DNS excerpts; labels in .scv):
1. whether the stage's frame decisions equal the `ten_vad` wrapper's (fresh TenVad per file, frame by frame);
2. precision / recall / F1 scored per sample on a 10 ms grid, pooled over all files;
3. agreement of the stage's frame decisions on converted copies (48 kHz stereo FLAC, 44.1 kHz OGG, 8 kHz WAV) with
   its decisions on the 16 kHz originals, and the F1 of each copy.
The data is read in place and the copies go to a temporary directory: nothing is copied into the repository.
"""
from __future__ import annotations

import argparse
import glob
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from amela.vad.config import SAMPLE_RATE, VadConfig  # noqa: E402
from amela.vad.stage import VadStage  # noqa: E402

GRID_S = 0.01
DEFAULT_DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data", "ten-vad-dev")


def read_labels(path: str) -> list[tuple[float, float, int]]:
    """`.scv`: one line `name,start,end,label,start,end,label,...` (label 1 = speech)."""
    with open(path, encoding="utf-8") as fh:
        fields = fh.read().strip().split(",")[1:]
    return [(float(fields[i]), float(fields[i + 1]), int(fields[i + 2])) for i in range(0, len(fields) - 2, 3)]


def grid_times(duration_s: float) -> np.ndarray:
    """The centre of every 10 ms cell of the file."""
    return (np.arange(int(duration_s / GRID_S)) + 0.5) * GRID_S


def grid_truth(labels, duration_s: float) -> np.ndarray:
    t = grid_times(duration_s)
    truth = np.zeros(len(t), np.int8)
    for start, end, label in labels:
        truth[(t >= start) & (t < end)] = label
    return truth


def grid_prediction(flags: np.ndarray, hop_size: int, duration_s: float) -> np.ndarray:
    """The decision of the frame that holds each grid point (0 past the last complete frame)."""
    idx = (grid_times(duration_s) * SAMPLE_RATE // hop_size).astype(np.int64)
    pred = np.zeros(len(idx), np.int8)
    ok = idx < len(flags)
    pred[ok] = flags[idx[ok]] > 0  # -1 (hop 160, first frame: not scored) is not speech
    return pred


def prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return p, r, 2 * p * r / (p + r) if p + r else 0.0


def counts(truth: np.ndarray, pred: np.ndarray) -> np.ndarray:
    return np.array([int(((pred == 1) & (truth == 1)).sum()), int(((pred == 1) & (truth == 0)).sum()),
                     int(((pred == 0) & (truth == 1)).sum())])


def stage_flags(stage: VadStage, path: str) -> np.ndarray:
    """Frame decisions rebuilt from the stage's output segments (frame-aligned with the default clean-up)."""
    out = stage.process([{"audio_filepath": path, "duration": 0.0}])[0]
    if isinstance(out, Exception):
        raise out
    frame_s = stage.config.frame_s
    n = int(round(out["duration"] * SAMPLE_RATE)) // stage.config.hop_size
    flags = np.zeros(n, np.int32)
    for start, end in out["speech_segments"]:
        flags[int(round(start / frame_s)): int(round(end / frame_s))] = 1
    return flags


def wrapper_flags(path: str, hop_size: int, threshold: float) -> np.ndarray:
    import soundfile
    from ten_vad import TenVad

    audio, _ = soundfile.read(path, dtype="int16")
    vad = TenVad(hop_size, threshold)
    return np.array([vad.process(audio[i * hop_size:(i + 1) * hop_size])[1]
                     for i in range(len(audio) // hop_size)], np.int32)


# label: (file suffix, rate, channels, format, subtype, libsndfile compression level (None: its default))
COPIES = {
    "48k stereo FLAC": ("_48k.flac", 48000, 2, "FLAC", "PCM_24", None),
    "44.1k OGG q-high": ("_44k_hq.ogg", 44100, 1, "OGG", "VORBIS", 0.0),  # Vorbis quality 1.0
    "44.1k OGG default": ("_44k.ogg", 44100, 1, "OGG", "VORBIS", None),  # libsndfile's default quality
    "8k WAV": ("_8k.wav", 8000, 1, "WAV", "PCM_16", None),
}


# label: (file suffix, sox arguments after the input): what a researcher converting with sox would get
SOX_COPIES = {
    "44.1k OGG by sox": ("_44k_sox.ogg", ["-r", "44100"]),  # sox's own Vorbis defaults (quality 3)
}


def convert(src: str, dst_dir: str, sizes: dict) -> dict[str, str]:
    """Copies of `src` per COPIES (resampled with soxr); adds each copy's bytes and seconds to `sizes`."""
    import soundfile
    import soxr

    audio, sr = soundfile.read(src, dtype="float32")
    name = os.path.splitext(os.path.basename(src))[0]
    out = {}
    for label, (suffix, rate, channels, fmt, subtype, level) in COPIES.items():
        path = out[label] = os.path.join(dst_dir, name + suffix)
        y = soxr.resample(audio, sr, rate)
        y = np.stack([y, y], axis=1) if channels == 2 else y
        kw = {} if level is None else {"compression_level": level}
        soundfile.write(path, y, rate, format=fmt, subtype=subtype, **kw)
        size, secs = sizes.get(label, (0, 0.0))
        sizes[label] = (size + os.path.getsize(path), secs + len(audio) / sr)
    if shutil.which("sox"):
        for label, (suffix, args) in SOX_COPIES.items():
            path = out[label] = os.path.join(dst_dir, name + suffix)
            subprocess.run(["sox", src, *args, path], check=True)
            size, secs = sizes.get(label, (0, 0.0))
            sizes[label] = (size + os.path.getsize(path), secs + len(audio) / sr)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="TEN-VAD stage accuracy on labelled speech")
    parser.add_argument("--data", default=DEFAULT_DATA, help="directory of NAME.wav + NAME.scv")
    parser.add_argument("--threshold", type=float, default=0.5)
    parser.add_argument("--hop-size", type=int, default=256)
    args = parser.parse_args(argv)
    wavs = sorted(glob.glob(os.path.join(args.data, "*.wav")))
    if not wavs:
        print(f"no .wav files in {args.data}", file=sys.stderr)
        return 2
    stage = VadStage(VadConfig(hop_size=args.hop_size, threshold=args.threshold))
    stage.setup()
    totals = {"16k original": np.zeros(3, np.int64)}
    agree, sizes = {}, {}
    exact = 0
    with tempfile.TemporaryDirectory() as tmp:
        for wav in wavs:
            import soundfile

            duration_s = soundfile.info(wav).duration
            truth = grid_truth(read_labels(wav[:-4] + ".scv"), duration_s)
            ref = stage_flags(stage, wav)
            exact += np.array_equal(ref, (wrapper_flags(wav, args.hop_size, args.threshold) > 0).astype(np.int32))
            totals["16k original"] += counts(truth, grid_prediction(ref, args.hop_size, duration_s))
            for label, path in convert(wav, tmp, sizes).items():
                flags = stage_flags(stage, path)
                n = min(len(flags), len(ref))
                same, total = agree.get(label, (0, 0))
                agree[label] = (same + int((flags[:n] == ref[:n]).sum()),
                                total + max(len(flags), len(ref)))
                totals.setdefault(label, np.zeros(3, np.int64))
                totals[label] += counts(truth, grid_prediction(flags, args.hop_size, duration_s))
    print(f"{len(wavs)} files from {os.path.abspath(args.data)}; threshold {args.threshold}, hop {args.hop_size}")
    print(f"stage == ten_vad wrapper frame decisions (16 kHz originals): {exact}/{len(wavs)} files identical")
    print(f"{'input':<18} {'kbit/s':>7} {'P':>6} {'R':>6} {'F1':>6}   agreement with 16 kHz decisions")
    for label, c in totals.items():
        p, r, f1 = prf(*c.tolist())
        same, total = agree.get(label, (0, 0))
        share = f"{100 * same / total:.2f}% of {total} frames" if total else "(reference)"
        size, secs = sizes.get(label, (0, 0.0))
        rate = f"{8 * size / secs / 1000:7.0f}" if secs else f"{'256':>7}"
        print(f"{label:<18} {rate} {p:6.3f} {r:6.3f} {f1:6.3f}   {share}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
