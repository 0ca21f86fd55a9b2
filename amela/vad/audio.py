"""Any audio file (or a span of one) as a stream of mono 16 kHz int16 blocks, the only input TEN-VAD takes.

soundfile decodes (wav, flac, ogg, mp3, ...), soxr resamples. 16-bit PCM already at 16 kHz is read as int16 and
passed through untouched, so on such input the stage sees exactly the samples a direct caller would. Everything else
goes through float32: channels averaged (or one picked), resampled, then scaled by 32768 with rounding and clipping
(float files may exceed full scale; truncation would bias every sample towards zero). Blocks keep memory flat on
hour-long files. Every problem becomes an ItemError naming the file and what is wrong with it.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from ..audio_checks import check_header, decoded_until_s
from ..errors import ItemError
from .config import SAMPLE_RATE

BLOCK_S = 10.0  # seconds of source audio decoded at a time


@dataclass
class Span:
    """The part of a file a record names, in source frames."""

    path: str
    samplerate: int
    channels: int
    subtype: str
    start: int
    frames: int  # to read from `start` (the file's end may come sooner: then `read` is smaller)
    read: int = 0  # source frames actually decoded

    @property
    def duration_s(self) -> float:
        return self.read / self.samplerate

    @property
    def passthrough(self) -> bool:
        """16-bit PCM at 16 kHz: read as int16 and hand over as is."""
        return self.samplerate == SAMPLE_RATE and self.subtype == "PCM_16"


def _check_file(path: str) -> None:
    """Readable reasons for what libsndfile would only call a 'System error'."""
    try:
        with open(path, "rb"):
            pass
        size = os.path.getsize(path)
    except FileNotFoundError:
        raise ItemError(f"{path}: file not found") from None
    except PermissionError:
        raise ItemError(f"{path}: permission denied") from None
    except IsADirectoryError:
        raise ItemError(f"{path}: is a directory, not an audio file") from None
    except OSError as exc:
        raise ItemError(f"{path}: cannot open: {exc.strerror or exc}") from None
    if size == 0:
        raise ItemError(f"{path}: empty file (0 bytes)")


def _open(path: str):
    import soundfile

    try:
        return soundfile.SoundFile(path)
    except Exception as exc:  # LibsndfileError, RuntimeError, TypeError on odd headers: all mean "unreadable"
        reason = getattr(exc, "error_string", None) or str(exc)
        raise ItemError(f"{path}: not a readable audio file ({reason})") from None


def open_span(record: dict, channel: int | None):
    """(open SoundFile positioned at the span's start, Span); the caller closes the file."""
    path = record["audio_filepath"]
    _check_file(path)
    check_header(path)  # a WAV cut short (libsndfile would decode what is left as if complete)
    fh = _open(path)
    try:
        span = _span(fh, path, record, channel)
        if span.start:
            fh.seek(span.start)
    except BaseException:
        fh.close()
        raise
    return fh, span


def _span(fh, path: str, record: dict, channel: int | None) -> Span:
    sr, total = fh.samplerate, fh.frames
    if sr <= 0:
        raise ItemError(f"{path}: invalid sample rate {sr}")
    if total == 0:
        raise ItemError(f"{path}: no audio samples (0 frames)")
    if channel is not None and channel >= fh.channels:
        raise ItemError(f"{path}: has {fh.channels} channel(s); channel {channel} (0-based) does not exist")
    offset = float(record.get("offset") or 0.0)
    duration = float(record.get("duration") or 0.0)
    start = int(round(offset * sr))
    if start >= total:
        raise ItemError(f"{path}: offset {offset:g} s is at or past the end of the file ({total / sr:g} s)")
    # duration 0 (unknown, e.g. a header the scan could not read): to the end of the file.
    frames = int(round(duration * sr)) if duration > 0 else total - start
    return Span(path, sr, fh.channels, fh.subtype, start, min(frames, total - start))


def _to_int16(y: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(y * 32768.0), -32768, 32767).astype(np.int16)


def iter_blocks(fh, span: Span, channel: int | None) -> Iterator[np.ndarray]:
    """Mono 16 kHz int16 blocks of the span; `span.read` counts the source frames decoded."""
    block = max(1, int(BLOCK_S * span.samplerate))
    if span.passthrough:
        left = span.frames
        while left > 0:
            data = _read(fh, span, min(block, left), "int16")
            if not len(data):
                break
            left -= len(data)
            span.read += len(data)
            yield np.ascontiguousarray(data[:, channel]) if channel is not None else _mean_int16(data)
    else:
        yield from _float_blocks(fh, span, channel, block)
    _check_complete(span)


def _read(fh, span: Span, frames: int, dtype: str) -> np.ndarray:
    try:
        return fh.read(frames, dtype=dtype, always_2d=True)
    except RuntimeError as exc:  # soundfile.LibsndfileError: corrupt data past a valid header
        reason = getattr(exc, "error_string", None) or str(exc)
        stop_s = decoded_until_s(span.path, span.start + span.read)
        at = f"{stop_s:.3f} s" if stop_s is not None else f"or after {(span.start + span.read) / span.samplerate:.3f} s"
        raise ItemError(f"{span.path}: truncated or corrupt audio data: decoding stopped at {at} of the file, whose header "
                        f"promises {(span.start + span.frames) / span.samplerate:.3f} s ({reason})") from None


def _check_complete(span: Span) -> None:
    """A file that ends well before its header says is truncated (MP3 lengths are estimates: some slack)."""
    missing = span.frames - span.read
    if missing > max(0.5 * span.samplerate, 0.01 * span.frames):
        raise ItemError(f"{span.path}: truncated: the header promises {span.frames / span.samplerate:.3f} s from "
                        f"the start of the span, only {span.read / span.samplerate:.3f} s could be decoded")


def _mean_int16(data: np.ndarray) -> np.ndarray:
    if data.shape[1] == 1:
        return np.ascontiguousarray(data[:, 0])
    return _to_int16(_mix(data, None, np.float32(1 / 32768)))


_UNIT_SCALE = np.float32(1.0)


def _mix(data: np.ndarray, channel: int | None, scale=_UNIT_SCALE) -> np.ndarray:
    """One channel, or the average of all, as contiguous float32. Column sums rather than mean(axis=1), which
    reduces each short row separately and costs more than decoding."""
    if channel is not None:
        return np.ascontiguousarray(data[:, channel], dtype=np.float32) * scale
    total = data[:, 0].astype(np.float32)
    for c in range(1, data.shape[1]):
        total += data[:, c]
    total *= np.float32(scale / data.shape[1])
    return total


def _float_blocks(fh, span: Span, channel: int | None, block: int) -> Iterator[np.ndarray]:
    import soxr

    stream = None if span.samplerate == SAMPLE_RATE else soxr.ResampleStream(span.samplerate, SAMPLE_RATE, 1, "float32")
    left = span.frames
    while left > 0:
        data = _read(fh, span, min(block, left), "float32")
        if not len(data):
            break
        mono = _mix(data, channel)
        bad = ~np.isfinite(mono)
        if bad.any():
            first = (span.read + int(np.argmax(bad))) / span.samplerate
            raise ItemError(f"{span.path}: contains NaN or infinite samples (first at {first:.3f} s)")
        left -= len(data)
        span.read += len(data)
        yield _to_int16(stream.resample_chunk(mono, last=left <= 0) if stream else mono)
    if stream is not None and left > 0:  # the file ended before the span did: flush the resampler
        yield _to_int16(stream.resample_chunk(np.zeros(0, np.float32), last=True))
