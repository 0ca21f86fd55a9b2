"""Checks every stage's audio decode path shares: truncation that a header reveals, and where decoding stopped.

libsndfile quietly shortens a WAV whose data chunk promises more than the file holds (a copy cut to a third decodes
as a third), so the header is read here. A cut FLAC fails on the first read of a large block, which says nothing of
where; `decoded_until_s` reads again in small steps to name the second. Formats whose length is not in the header
(OGG, MP3 without a Xing/Info frame) cannot be checked: a cut file there decodes as a shorter one (docs/manifest.md).
"""
from __future__ import annotations

import os
import struct

from .errors import ItemError

STEP_FRAMES = 4096


def check_header(path: str) -> None:
    """Raise ItemError `truncated` when a WAV's data chunk promises more bytes than the file holds."""
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
    file cannot even be opened again."""
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
