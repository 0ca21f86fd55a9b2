"""One pass over a record's span: the signal measures at the file's own rate, and the 16 kHz mono float32 samples
DNSMOS scores, block by block. The span checks and their messages (missing, empty, unreadable file, offset past the
end) are the VAD stage's."""
from __future__ import annotations

import numpy as np

from ..errors import ItemError
from ..vad.audio import open_span
from .dnsmos import SAMPLE_RATE
from .signal import SignalMeasures

BLOCK_S = 30.0


def read_span(record: dict, channel: int | None, clip_level: float, on_block=None) -> tuple[np.ndarray | None, dict]:
    """(16 kHz mono float32 in [-1, 1], signal measures) of the record's span. With `on_block`, each 16 kHz block
    goes to it as it is decoded and none is kept (the audio returned is None): memory stays flat on long files."""
    import soxr

    fh, span = open_span(record, channel)
    measures = SignalMeasures(span.samplerate, clip_level)
    stream = None if span.samplerate == SAMPLE_RATE else soxr.ResampleStream(span.samplerate, SAMPLE_RATE, 1,
                                                                             "float32", quality="HQ")
    pieces = []
    block = max(1, int(BLOCK_S * span.samplerate))
    left = span.frames
    with fh:
        while left > 0:
            data = _read(fh, span, min(block, left))
            if not len(data):
                break
            if channel is not None:
                data = data[:, channel:channel + 1]
            if not np.isfinite(data).all():
                raise ItemError(f"{span.path}: contains NaN or infinite samples (in the block at "
                                f"{span.read / span.samplerate:.3f} s)")
            mono = data[:, 0] if data.shape[1] == 1 else data.mean(axis=1, dtype=np.float32)
            measures.add(data, mono)
            left -= len(data)
            span.read += len(data)
            _deliver(stream.resample_chunk(mono, last=left <= 0) if stream else mono, pieces, on_block)
    if stream is not None and left > 0:  # the file ended before the span did: flush the resampler
        _deliver(stream.resample_chunk(np.zeros(0, np.float32), last=True), pieces, on_block)
    missing = span.frames - span.read
    if missing > max(0.5 * span.samplerate, 0.01 * span.frames):
        raise ItemError(f"{span.path}: truncated: the header promises {span.frames / span.samplerate:.3f} s from the "
                        f"start of the span, only {span.read / span.samplerate:.3f} s could be decoded")
    if not span.read:
        raise ItemError(f"{span.path}: no samples in the span (offset {record.get('offset', 0)} s, duration "
                        f"{record.get('duration')} s)")
    audio = None if on_block else (np.concatenate(pieces) if pieces else np.zeros(0, np.float32))
    return audio, {**measures.result(), "duration_read_s": span.read / span.samplerate}


def _deliver(block: np.ndarray, pieces: list, on_block) -> None:
    if not len(block):
        return
    # Float files may exceed full scale; the models expect [-1, 1] (clipping_ratio reports how much was over).
    block = np.clip(block, -1.0, 1.0)
    if on_block is not None:
        on_block(block)
    else:
        pieces.append(block)


def _read(fh, span, frames: int) -> np.ndarray:
    try:
        return fh.read(frames, dtype="float32", always_2d=True)
    except RuntimeError as exc:  # soundfile.LibsndfileError: corrupt data past a valid header
        reason = getattr(exc, "error_string", None) or str(exc)
        raise ItemError(f"{span.path}: corrupt audio data at or after {span.read / span.samplerate:.3f} s "
                        f"({reason})") from None
