"""One pass over a record's span (amela/audio.py reads it): the signal measures at the file's own rate, and the
16 kHz mono float32 samples DNSMOS scores, clipped to [-1, 1], block by block."""
from __future__ import annotations

import numpy as np

from ..audio import SAMPLE_RATE, iter_blocks, open_span
from .signal import SignalMeasures

BLOCK_S = 30.0


def read_span(record: dict, channel: int | None, clip_level: float, on_block=None) -> tuple[np.ndarray | None, dict]:
    """(16 kHz mono float32 in [-1, 1], signal measures) of the record's span. With `on_block`, each 16 kHz block
    goes to it as it is decoded and none is kept (the audio returned is None): memory stays flat on long files."""
    fh, span = open_span(record, channel)
    measures = SignalMeasures(span.samplerate, clip_level)
    pieces = []
    with fh:
        for block in iter_blocks(fh, span, rate=SAMPLE_RATE, block_s=BLOCK_S, on_source=measures.add):
            if not len(block):
                continue
            # Float files may exceed full scale; the models expect [-1, 1] (clipping_ratio reports how much was over).
            block = np.clip(block, -1.0, 1.0)
            if on_block is not None:
                on_block(block)
            else:
                pieces.append(block)
    audio = None if on_block else (np.concatenate(pieces) if pieces else np.zeros(0, np.float32))
    return audio, {**measures.result(), "duration_read_s": span.duration_s}
