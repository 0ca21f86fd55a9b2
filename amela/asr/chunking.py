"""Cutting long audio into pieces a model can take, and putting the transcripts back together.

Cuts go, in order of preference: at the VAD stage's `split_points` (middles of silences), between its
`speech_segments`, and otherwise at the quietest 20 ms frame near the end of each `max_s` window. Pieces never
overlap, so no word is transcribed twice; a cut in a silence (or the quietest spot) rarely splits a word.
VAD times are seconds of the audio file, as the VAD stage writes them (a record with `offset` 12 has segments from 12
on); they are made relative to the record's span here.
"""
from __future__ import annotations

FRAME_SECONDS = 0.02
MIN_PIECE_SECONDS = 1.0  # a VAD cut closer than this to the previous cut is skipped (a 0.2 s piece helps nobody)


def vad_cut_points(record: dict, duration: float) -> list[float]:
    """Candidate cut times (seconds from the record's start) from VAD fields, sorted; [] when there are none."""
    offset = float(record.get("offset") or 0.0)
    points = record.get("split_points")
    if not points:
        segments = record.get("speech_segments") or []
        spans = sorted((float(s[0]), float(s[1])) for s in segments if len(s) >= 2)
        # The middle of each gap between consecutive speech segments is silence.
        points = [(a_end + b_start) / 2 for (_, a_end), (b_start, _) in zip(spans, spans[1:]) if b_start > a_end]
    relative = (float(p) - offset for p in points)
    return sorted(p for p in relative if 0.0 < p < duration)


def quietest_sample(samples, sample_rate: int, start: int, end: int) -> int:
    """The centre sample of the lowest-energy frame in samples[start:end] (a numpy array)."""
    import numpy as np

    frame = max(1, int(FRAME_SECONDS * sample_rate))
    region = samples[start:end]
    count = len(region) // frame
    if count < 2:
        return end
    energy = np.square(region[: count * frame].astype(np.float64)).reshape(count, frame).sum(axis=1)
    return start + int(np.argmin(energy)) * frame + frame // 2


def plan_pieces(samples, sample_rate: int, max_s: float, search_s: float,
                vad_points: list[float] | None = None) -> list[tuple[int, int]]:
    """[(start, end)] sample spans covering all of `samples`, each at most max_s long."""
    n = len(samples)
    limit = int(max_s * sample_rate)
    if n <= limit:
        return [(0, n)]
    points = [int(round(p * sample_rate)) for p in (vad_points or [])]
    min_piece = int(MIN_PIECE_SECONDS * sample_rate)
    pieces, start = [], 0
    while n - start > limit:
        window_end = start + limit
        usable = [p for p in points if start + min_piece <= p <= window_end]
        if usable:
            cut = usable[-1]  # the latest VAD cut keeps pieces long (fewer pieces, more context each)
        else:
            cut = quietest_sample(samples, sample_rate, max(start + min_piece, window_end - int(search_s * sample_rate)),
                                  window_end)
        pieces.append((start, cut))
        start = cut
    pieces.append((start, n))
    return pieces


def join_texts(texts: list[str]) -> str:
    """Piece transcripts in order, one space between non-empty ones."""
    return " ".join(t.strip() for t in texts if t and t.strip())
