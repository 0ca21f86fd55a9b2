"""Reading a manifest record's audio span as 16 kHz mono float32, and writing WAV bytes; errors name the file."""
from __future__ import annotations

import io
import os

from ..audio_checks import check_header, decoded_until_s
from ..errors import ItemError


def read_span(record: dict, sample_rate: int = 16000):
    """The record's audio (its offset/duration span when it has an offset) as a float32 numpy array."""
    import numpy as np
    import soundfile as sf

    path = record["audio_filepath"]
    if record.get("header_error"):
        raise ItemError(f"{path}: cannot read audio: {record['header_error']}")
    check_header(path)
    try:
        with sf.SoundFile(path) as fh:
            sr = fh.samplerate
            start, frames = 0, -1
            if "offset" in record:
                start = int(round(float(record["offset"]) * sr))
                frames = int(round(float(record["duration"]) * sr))
                fh.seek(min(start, fh.frames))
            audio = fh.read(frames=frames, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError, ValueError) as exc:
        stop_s = decoded_until_s(path)
        where = f" (decoding stopped at {stop_s:.3f} s: truncated or corrupt)" if stop_s else ""
        raise ItemError(f"{path}: cannot read audio: {exc}{where}") from exc
    audio = audio.mean(axis=1) if audio.shape[1] > 1 else audio[:, 0]
    if audio.size == 0:
        raise ItemError(f"{path}: no audio samples in the requested span (offset {record.get('offset', 0)})")
    if not np.isfinite(audio).all():
        raise ItemError(f"{path}: audio contains NaN or infinite samples")
    if sr != sample_rate:
        import soxr

        audio = soxr.resample(audio, sr, sample_rate).astype(np.float32)
    return audio


def wav_bytes(audio, sample_rate: int) -> bytes:
    """16-bit PCM WAV (what the original resynthesis wrote)."""
    import numpy as np
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, np.clip(audio, -1.0, 1.0), sample_rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def mirror_path(record: dict, input_root: str | None, ext: str) -> str:
    """Where a record's output file goes, relative to the output root: the input path relative to `input_root`
    (or the absolute path without its leading '/'), extension replaced; a record with an `offset` (a segment of a
    longer file) gets its span in the name, so segments of one file never overwrite each other."""
    src = record["audio_filepath"]
    if input_root:
        rel = os.path.relpath(src, input_root)
        if rel == ".." or rel.startswith(".." + os.sep) or os.path.isabs(rel):
            raise ItemError(f"{src}: not under --input-root {input_root}")
    else:
        rel = src.lstrip("/")
    stem = os.path.splitext(rel)[0]
    if "offset" in record:
        start = float(record["offset"])
        stem += f"_{start:.2f}-{start + float(record['duration']):.2f}"
    return stem + ext
