#!/usr/bin/env python3
"""Generate the small sample recordings bundled in amela/data/samples (the README's main-job input).

espeak-ng phrases (synthetic speech: no licence questions, no download) joined with silences, over a little noise,
16 kHz mono. Two short FLAC files, a short noisy OGG and a 64 s OGG (long enough for split points and flagged_1m; Vorbis keeps it
small). The noise is seeded, so the audio is reproducible given the same espeak-ng build. Needs espeak-ng on PATH.

    .venv/bin/python scripts/make_samples.py [--out amela/data/samples]
"""
from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys

import numpy as np
import soundfile
import soxr

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from amela.manifest import write_bytes_atomic  # noqa: E402

SR = 16000
PHRASES = [
    "Speech processing on a cluster starts with finding the speech.",
    "Voice activity detection marks where people talk and where they do not.",
    "The quick brown fox jumps over the lazy dog.",
    "Each file gets a speech ratio, its segments and its statistics.",
    "Long recordings get split points in the middle of a pause.",
    "Silence, music and noise should not be sent to the recogniser.",
    "This sentence is here to make the recording longer than one minute.",
    "Thank you for listening to this synthetic sample.",
]


def speak(text: str, voice: str, speed_wpm: int = 150) -> np.ndarray:
    wav = subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed_wpm), "--stdout", text],
                         check=True, capture_output=True).stdout
    audio, sr = soundfile.read(io.BytesIO(wav), dtype="float32")
    return soxr.resample(audio, sr, SR).astype(np.float32)


def compose(parts: list, snr_noise_dbfs: float, rng: np.random.Generator) -> np.ndarray:
    """`parts`: phrase arrays and silence lengths (seconds), concatenated, plus white noise at the given level."""
    chunks = [p if isinstance(p, np.ndarray) else np.zeros(int(p * SR), np.float32) for p in parts]
    audio = np.concatenate(chunks)
    audio = 0.5 * audio / max(1e-9, float(np.abs(audio).max()))
    noise = rng.standard_normal(len(audio)).astype(np.float32) * 10 ** (snr_noise_dbfs / 20)
    return np.clip(audio + noise, -1.0, 1.0)


def samples(rng: np.random.Generator) -> dict[str, tuple[np.ndarray, str]]:
    say = lambda i, voice="en-us": speak(PHRASES[i], voice)  # noqa: E731
    return {
        "phrases_clean.flac": (compose([0.8, say(0), 1.0, say(2), 0.6], -80, rng), "FLAC"),
        "phrases_noisy.ogg": (compose([0.5, say(2, "en-gb"), 1.2, say(7, "en-gb"), 0.5], -40, rng), "OGG"),
        "no_speech.flac": (compose([np.zeros(0, np.float32), 2.5], -80, rng), "FLAC"),
        "long_talk.ogg": (_long(say, rng), "OGG"),
    }


def _long(say, rng) -> np.ndarray:
    """About 64 s: phrases with pauses of 0.4 to 1.5 s, so split points have silences to sit in."""
    parts: list = [0.5]
    i = 0
    while sum(len(p) / SR if isinstance(p, np.ndarray) else p for p in parts) < 63.0:
        parts += [say(i % len(PHRASES), ("en-us", "en-gb")[i % 2]), float(rng.uniform(0.4, 1.5))]
        i += 1
    return compose(parts, -75, rng)


def encode(audio: np.ndarray, fmt: str) -> bytes:
    out = io.BytesIO()
    if fmt == "OGG":
        # compression_level sets Vorbis' VBR quality (1 = smallest); speech at 16 kHz stays clear.
        soundfile.write(out, audio, SR, format="OGG", subtype="VORBIS", compression_level=0.9)
    else:
        soundfile.write(out, audio, SR, format=fmt, subtype="PCM_16")
    return out.getvalue()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default_out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "amela", "data", "samples")
    parser.add_argument("--out", default=default_out, help="directory for the samples")
    parser.add_argument("--seed", type=int, default=20240601)
    args = parser.parse_args(argv)
    total = 0
    for name, (audio, fmt) in samples(np.random.default_rng(args.seed)).items():
        data = encode(audio, fmt)
        write_bytes_atomic(os.path.join(args.out, name), data)
        total += len(data)
        print(f"{name}: {len(audio) / SR:.1f} s, {len(data) / 1024:.0f} KiB")
    print(f"total {total / 1024:.0f} KiB in {os.path.abspath(args.out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
