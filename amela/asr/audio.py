"""Loading a record's audio span as 16 kHz-style mono float32, with a clear error naming the file when it cannot be.

The stage decodes audio itself and hands NeMo arrays: a missing, empty or stereo file then fails alone here, cheaply,
instead of aborting a whole NeMo call (which it does for every file in it), and `offset`/`duration` spans are exact.
"""
from __future__ import annotations

import os

import numpy as np

from ..audio_checks import check_header, decoded_until_s
from ..errors import ItemError


def load_span(record: dict, sample_rate: int, channel: int | None = None) -> np.ndarray:
    """The samples of record's span [offset, offset + duration] at `sample_rate`, mono float32."""
    import soundfile

    path = record["audio_filepath"]
    if record.get("header_error"):
        raise ItemError(f"file {path}: unreadable header: {record['header_error']}")
    if not os.path.isfile(path):
        raise ItemError(f"file {path}: does not exist" if not os.path.exists(path) else f"file {path}: not a file")
    check_header(path)
    offset, duration = float(record.get("offset") or 0.0), float(record.get("duration") or 0.0)
    try:
        with soundfile.SoundFile(path) as fh:
            rate = fh.samplerate
            start = int(round(offset * rate))
            if start > fh.frames:
                raise ItemError(f"file {path}: offset {offset} s is past its end ({fh.frames / rate:.3f} s)")
            fh.seek(start)
            frames = int(round(duration * rate)) if duration > 0 else -1
            data = fh.read(frames, dtype="float32", always_2d=True)
    except ItemError:
        raise
    except Exception as exc:  # libsndfile's errors: empty, truncated, unknown format
        stop_s = decoded_until_s(path)
        where = f" (decoding stopped at {stop_s:.3f} s: truncated or corrupt)" if stop_s else ""
        raise ItemError(f"file {path}: cannot decode audio: {exc}{where}") from None
    if data.shape[0] == 0:
        raise ItemError(f"file {path}: no audio samples (empty file or empty span)")
    return _to_mono_rate(data, rate, sample_rate, channel, path)


def _to_mono_rate(data: np.ndarray, rate: int, sample_rate: int, channel: int | None, path: str) -> np.ndarray:
    if channel is None:
        mono = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    elif channel < data.shape[1]:
        mono = data[:, channel]
    else:
        raise ItemError(f"file {path}: channel {channel} requested, the file has {data.shape[1]}")
    if rate != sample_rate:
        import soxr

        mono = soxr.resample(mono, rate, sample_rate, quality="HQ")
    mono = np.ascontiguousarray(mono, dtype=np.float32)
    if not np.isfinite(mono).all():
        raise ItemError(f"file {path}: audio contains NaN or infinite samples")
    return mono
