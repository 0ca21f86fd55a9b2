"""The one reader of a record's audio span, for every stage (VAD, ASR, S2S, quality, the report's listening clips).

A record names a file (`audio_filepath`) and optionally a span: `offset` (seconds from the file's start; absent: 0)
and `duration` (seconds from the offset; absent or 0: to the end of the file; past the end: to the end, and the span
is as long as what could be read). Both apply with or without the other.

- `read_span(record, rate, channel)`: the span as one mono float32 array at `rate` (ASR, S2S, listening clips).
- `open_span(record, channel)` + `iter_blocks(fh, span, ...)`: the same samples block by block, so memory stays flat
  on hour-long files (VAD, quality); `read_span` is the concatenation of these blocks.

Channels (every stage's `channel` option means this): None averages all channels; an index (0-based) takes that
channel alone. A channel the file lacks is an error naming how many it has.

Resampling: soxr at RESAMPLE_QUALITY = "HQ" (libsoxr's high-quality recipe: 20-bit precision, linear phase), which
every stage used before the readers were merged, so no stage's numbers moved. soxr's streaming resampler gives the
same samples as its one-shot `resample` whatever the block size, so a block-by-block read equals a whole read. Audio
already at the target rate is not resampled at all: TEN-VAD's results on 16 kHz input depend on no quality setting.

int16 (`dtype="int16"`, TEN-VAD's only input): 16-bit PCM already at the target rate is read as int16 and passed
through untouched, so on such input the stage sees exactly the samples a direct caller would. Everything else goes
through float32 and is scaled by 32768 with rounding and clipping (float files may exceed full scale; truncation
would bias every sample towards zero). float32 output is not clipped: a stage whose model wants [-1, 1] clips.

Checks, each an ItemError naming the file, what is wrong and, where there is one, the fix: missing, unreadable or
empty file; a channel the file lacks; an offset at or past the end; a WAV whose header promises more than the file
holds (libsndfile would quietly decode the rest as if complete: `check_header`); data that stops decoding (and the
second where it stopped: `decoded_until_s`); a file that ends well before its header says (MP3 lengths are estimates:
some slack); NaN or infinite samples (and the second of the first); a span with no samples. Formats whose length is
not in the header (OGG, MP3 without a Xing/Info frame) cannot be checked: a cut file there reads as a shorter one.
"""
from __future__ import annotations

import os
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from .errors import ItemError

SAMPLE_RATE = 16000  # what every stage's models take (TEN-VAD, DNSMOS, the HuBERT units); listening clips too
RESAMPLE_QUALITY = "HQ"
BLOCK_S = 10.0  # seconds of source audio decoded at a time by default
STEP_FRAMES = 4096  # `decoded_until_s` reads on in steps this small to name the second where decoding fails


@dataclass
class Span:
    """The part of a file a record names, in source frames."""

    path: str
    samplerate: int
    channels: int
    subtype: str
    start: int
    frames: int  # to read from `start` (the file's end may come sooner: then `read` is smaller)
    channel: int | None = None  # the one channel read, or None: all averaged
    read: int = 0  # source frames actually decoded

    @property
    def duration_s(self) -> float:
        """Seconds decoded so far (after a full read: the span's real length)."""
        return self.read / self.samplerate

    @property
    def offset_s(self) -> float:
        return self.start / self.samplerate


def read_span(record: dict, rate: int = SAMPLE_RATE, channel: int | None = None) -> np.ndarray:
    """The samples of the record's span at `rate`, mono float32 (see the module docstring for the span rules)."""
    fh, span = open_span(record, channel)
    with fh:
        blocks = [b for b in iter_blocks(fh, span, rate=rate) if len(b)]
    if len(blocks) == 1:
        return blocks[0]
    return np.concatenate(blocks) if blocks else np.zeros(0, np.float32)


def open_span(record: dict, channel: int | None = None):
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


def iter_blocks(fh, span: Span, *, dtype: str = "float32", rate: int = SAMPLE_RATE, block_s: float = BLOCK_S,
                on_source: Callable[[np.ndarray, np.ndarray], None] | None = None) -> Iterator[np.ndarray]:
    """Mono blocks of the span at `rate` (float32, or int16 with `dtype="int16"`); `span.read` counts the source
    frames decoded. `on_source(data, mono)` sees each decoded block at the file's own rate before resampling: the
    frames x channels read (only the selected channel when there is one), float32, and their mono mix. An empty span,
    a file cut short and corrupt data raise ItemError after the blocks that could be read."""
    if dtype not in ("float32", "int16"):
        raise ValueError(f"dtype must be float32 or int16, got {dtype!r}")
    block = max(1, int(block_s * span.samplerate))
    if dtype == "int16" and on_source is None and span.samplerate == rate and span.subtype == "PCM_16":
        yield from _int16_blocks(fh, span, block)
    else:
        yield from _float_blocks(fh, span, block, rate, dtype == "int16", on_source)
    _check_complete(span)
    if not span.read:
        raise ItemError(f"{span.path}: no samples in the span (offset {span.offset_s:g} s, {span.frames} frames "
                        "asked): fix the record's offset or duration")


# -- opening ---------------------------------------------------------------------------------------------------------
def _check_file(path: str) -> None:
    """Readable reasons for what libsndfile would only call a 'System error'."""
    try:
        with open(path, "rb"):
            pass
        size = os.path.getsize(path)
    except FileNotFoundError:
        raise ItemError(f"{path}: file not found (check the manifest's audio_filepath)") from None
    except PermissionError:
        raise ItemError(f"{path}: permission denied (make it readable for this user)") from None
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


def _span(fh, path: str, record: dict, channel: int | None) -> Span:
    sr, total = fh.samplerate, fh.frames
    if sr <= 0:
        raise ItemError(f"{path}: invalid sample rate {sr}")
    if total == 0:
        raise ItemError(f"{path}: no audio samples (0 frames)")
    if channel is not None and not 0 <= channel < fh.channels:
        fix = ("leave channel unset" if fh.channels == 1 else
               f"set channel to 0..{fh.channels - 1}, or leave it unset to average all channels")
        raise ItemError(f"{path}: has {fh.channels} channel(s); channel {channel} (0-based) does not exist ({fix})")
    offset = float(record.get("offset") or 0.0)
    duration = float(record.get("duration") or 0.0)
    if offset < 0 or duration < 0:
        raise ItemError(f"{path}: negative offset ({offset:g} s) or duration ({duration:g} s) in the record")
    start = int(round(offset * sr))
    if start >= total:
        raise ItemError(f"{path}: offset {offset:g} s is at or past the end of the file ({total / sr:g} s): fix the "
                        "record's offset")
    # duration 0 (unknown, e.g. a header the scan could not read): to the end of the file.
    frames = int(round(duration * sr)) if duration > 0 else total - start
    return Span(path, sr, fh.channels, fh.subtype, start, min(frames, total - start), channel)


# -- decoding --------------------------------------------------------------------------------------------------------
def _int16_blocks(fh, span: Span, block: int) -> Iterator[np.ndarray]:
    left = span.frames
    while left > 0:
        data = _read(fh, span, min(block, left), "int16")
        if not len(data):
            break
        left -= len(data)
        span.read += len(data)
        if span.channel is not None:
            yield np.ascontiguousarray(data[:, span.channel])
        elif data.shape[1] == 1:
            yield np.ascontiguousarray(data[:, 0])
        else:
            yield _to_int16(_mix(data, None, np.float32(1 / 32768)))


def _float_blocks(fh, span: Span, block: int, rate: int, int16: bool, on_source) -> Iterator[np.ndarray]:
    import soxr

    stream = None
    if span.samplerate != rate:
        stream = soxr.ResampleStream(span.samplerate, rate, 1, "float32", quality=RESAMPLE_QUALITY)
    out = _to_int16 if int16 else _same
    left = span.frames
    while left > 0:
        data = _read(fh, span, min(block, left), "float32")
        if not len(data):
            break
        mono = _mix(data, span.channel)
        bad = ~np.isfinite(mono)
        if bad.any():
            first = (span.start + span.read + int(np.argmax(bad))) / span.samplerate
            raise ItemError(f"{span.path}: contains NaN or infinite samples (first at {first:.3f} s of the file)")
        if on_source is not None:
            ch = span.channel
            on_source(data if ch is None else data[:, ch:ch + 1], mono)
        left -= len(data)
        span.read += len(data)
        yield out(stream.resample_chunk(mono, last=left <= 0) if stream else mono)
    if stream is not None and left > 0:  # the file ended before the span did: flush the resampler
        yield out(stream.resample_chunk(np.zeros(0, np.float32), last=True))


def _same(y: np.ndarray) -> np.ndarray:
    return y


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


def _to_int16(y: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(y * 32768.0), -32768, 32767).astype(np.int16)


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


# -- truncation --------------------------------------------------------------------------------------------------------
def check_header(path: str) -> None:
    """Raise ItemError `truncated` when a WAV's data chunk promises more bytes than the file holds (libsndfile
    quietly shortens such a file: a copy cut to a third decodes as a third)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096)
        size = os.path.getsize(path)
    except OSError:
        return  # the decoder names the reason
    if len(head) < 12 or head[:4] not in (b"RIFF", b"RIFX") or head[8:12] != b"WAVE":
        return
    endian = "<" if head[:4] == b"RIFF" else ">"
    pos, byte_rate, align = 12, 0, 1
    while pos + 8 <= len(head):
        cid, csize = head[pos:pos + 4], struct.unpack(endian + "I", head[pos + 4:pos + 8])[0]
        if cid == b"fmt " and pos + 22 <= len(head):
            byte_rate, align = struct.unpack(endian + "IH", head[pos + 16:pos + 22])
        elif cid == b"data":
            held = size - (pos + 8)
            # 0 and 0xFFFFFFFF: written by a stream that never came back to fill the size in: nothing promised.
            if byte_rate and csize not in (0, 0xFFFFFFFF) and csize > held + max(1, align):
                raise ItemError(f"{path}: truncated: the header promises {csize / byte_rate:.3f} s of audio, the file "
                                f"holds {max(0, held) / byte_rate:.3f} s ({csize - held} bytes missing)")
            return
        pos += 8 + csize + (csize & 1)


def decoded_until_s(path: str, start_frame: int = 0) -> float | None:
    """Seconds from the file's start up to where decoding fails (reading on from `start_frame`), or None if the
    file cannot even be opened again. A cut FLAC fails on the first read of a large block, which says nothing of
    where; this reads again in small steps to name the second."""
    import soundfile

    try:
        fh = soundfile.SoundFile(path)
    except Exception:  # noqa: BLE001 - the caller reports the original error
        return None
    with fh:
        good = start_frame
        try:
            fh.seek(start_frame)
            while True:
                n = len(fh.read(STEP_FRAMES, dtype="int16", always_2d=True))
                if not n:
                    break
                good += n
        except Exception:  # noqa: BLE001 - the failure point is what we are looking for
            pass
        return good / fh.samplerate if fh.samplerate else None
