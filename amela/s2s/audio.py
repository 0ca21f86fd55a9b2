"""Writing S2S audio: WAV bytes, and where a record's output file goes (amela/audio.py reads the input)."""
from __future__ import annotations

import io
import os

from ..errors import ItemError


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
