"""From frame decisions to speech segments, per-file statistics and split points (pure functions, seconds).

Times here are relative to the start of the decoded span; the stage shifts them by the record's offset.
"""
from __future__ import annotations

import numpy as np

FLAG_NS_RATIO = 0.01  # flagged_ns: (almost) no speech ...
FLAG_NS_MAX_SPEECH_S = 0.3  # ... or no speech segment long enough to hold a word (the original AMELA rule)
FLAG_1M_S = 60.0
DECIMALS = 4  # 0.1 ms: frame boundaries (multiples of 10 or 16 ms) stay exact


def decide(probs: np.ndarray, threshold: float, neg_threshold: float | None = None) -> np.ndarray:
    """Speech decision per frame from probabilities (bool).

    Without hysteresis a frame is speech when its probability is above `threshold` (exactly the library's own flag;
    the -1 the library gives an unscored frame is never speech). With `neg_threshold` speech starts on a frame above
    `threshold` and lasts while the probability stays above `neg_threshold` (it ends at the first frame at or below
    it). neg_threshold == threshold is the same as no hysteresis."""
    probs = np.asarray(probs)
    high = probs > threshold
    if neg_threshold is None or neg_threshold >= threshold:
        return high
    low = probs > neg_threshold
    edges = np.diff(np.concatenate(([0], low.astype(np.int8), [0])))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    highs = np.flatnonzero(high)
    if not len(highs):
        return high
    pos = np.searchsorted(highs, starts)  # the first high frame at or after each run of `low` frames
    first = highs[np.minimum(pos, len(highs) - 1)]
    ok = (pos < len(highs)) & (first < ends)
    marks = np.zeros(len(probs) + 1, np.int32)
    np.add.at(marks, first[ok], 1)
    np.add.at(marks, ends[ok], -1)
    return np.cumsum(marks[:-1]) > 0


def raw_segments(flags: np.ndarray, frame_s: float) -> list[list[float]]:
    """Runs of speech frames as [start, end] seconds: frame i covers [i, i+1) * frame_s.

    Speech is flag 1 (or True) only: with hop 160 the library answers -1 (probability -1) for the first frame, which
    has too little history to score; that frame counts as non-speech."""
    edges = np.diff(np.concatenate(([0], (np.asarray(flags) > 0).astype(np.int8), [0])))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return [[s * frame_s, e * frame_s] for s, e in zip(starts.tolist(), ends.tolist())]


def merge_close(segments: list[list[float]], max_gap_s: float) -> list[list[float]]:
    """Join segments separated by less than `max_gap_s` of silence (0 joins only overlapping ones)."""
    merged: list[list[float]] = []
    for start, end in segments:
        if merged and (start - merged[-1][1] < max_gap_s or start <= merged[-1][1]):
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return merged


def pad(segments: list[list[float]], onset_s: float, offset_s: float, duration_s: float) -> list[list[float]]:
    """Extend each segment by `onset_s` before and `offset_s` after (clipped to the file); segments whose padding
    meets are joined into their union, so a merged pair is padded once, at its outer edges, never twice."""
    padded = [[max(0.0, s - onset_s), min(duration_s, e + offset_s)] for s, e in segments]
    return merge_close(padded, 0.0)


def split_long(segment: list[float], probs: np.ndarray, frame_s: float, max_s: float) -> list[list[float]]:
    """Cut a segment longer than `max_s` into pieces of max_s/2..max_s, each cut in the middle of the frame with
    the lowest speech probability in the allowed window (the least speech-like moment)."""
    start, end = segment
    pieces = []
    last = len(probs) - 1
    while end - start > max_s:
        lo = int(np.ceil((start + max_s / 2) / frame_s - 0.5))
        hi = int(np.floor((start + max_s) / frame_s - 0.5))
        lo, hi = max(0, min(lo, last)), max(0, min(hi, last))
        k = lo + int(np.argmin(probs[lo: hi + 1])) if hi >= lo else lo
        cut = (k + 0.5) * frame_s
        if not start < cut < end:  # cannot happen for max_s >= 4 frames; guards the loop regardless
            break
        pieces.append([start, cut])
        start = cut
    pieces.append([start, end])
    return pieces


def postprocess(segments, probs, frame_s: float, duration_s: float, cfg) -> list[list[float]]:
    """The configured clean-up, in this order: merge short silences, drop short speech, pad, split long segments,
    drop segments still shorter than min_segment_s. With the default config the raw segments come back unchanged."""
    if cfg.min_silence_s > 0:
        segments = merge_close(segments, cfg.min_silence_s)
    if cfg.min_speech_s > 0:
        segments = [s for s in segments if s[1] - s[0] >= cfg.min_speech_s]
    onset_s, offset_s = cfg.pad_onset, cfg.pad_offset
    if onset_s > 0 or offset_s > 0:
        segments = pad(segments, onset_s, offset_s, duration_s)
    max_s = cfg.effective_max_segment_s
    if max_s is not None:
        segments = [p for s in segments for p in split_long(s, probs, frame_s, max_s)]
    if cfg.min_segment_s > 0:
        segments = [s for s in segments if s[1] - s[0] >= cfg.min_segment_s - 1e-9]
    return segments


def confidence(segments, probs: np.ndarray, frame_s: float) -> list[float]:
    """Mean speech probability of the frames each segment touches (an unscored frame's -1 counts as 0)."""
    p = np.clip(np.asarray(probs, np.float64), 0.0, 1.0)
    csum = np.concatenate(([0.0], np.cumsum(p)))
    n = len(p)
    out = []
    for start, end in segments:
        a = min(n, max(0, int(np.floor(start / frame_s + 1e-6))))
        b = min(n, max(a, int(np.ceil(end / frame_s - 1e-6))))
        out.append(round(float((csum[b] - csum[a]) / (b - a)), DECIMALS) if b > a else 0.0)
    return out


def pack(segments: list[list[float]], max_s: float, max_gap_s: float) -> list[list[list[float]]]:
    """Groups of consecutive segments, each spanning at most `max_s` from its first start to its last end, with at
    most `max_gap_s` between neighbours. Segments are never cut: one longer than `max_s` (the caller splits those
    first) forms a group of its own."""
    groups: list[list[list[float]]] = []
    for seg in segments:
        if groups and seg[0] - groups[-1][-1][1] <= max_gap_s + 1e-9 and seg[1] - groups[-1][0][0] <= max_s + 1e-9:
            groups[-1].append(seg)
        else:
            groups.append([seg])
    return groups


def gaps(segments: list[list[float]], duration_s: float) -> list[list[float]]:
    """Non-speech intervals: before, between and after the segments."""
    out, cursor = [], 0.0
    for start, end in segments:
        if start > cursor:
            out.append([cursor, start])
        cursor = max(cursor, end)
    if duration_s > cursor:
        out.append([cursor, duration_s])
    return out


def split_points(segments, duration_s: float, min_duration_s: float, every_s: float, min_silence_s: float):
    """For files of at least `min_duration_s`: points about every `every_s`, each in the middle of a silence of at
    least `min_silence_s` between two speech segments (the point nearest the target wins). Files with no such
    silence get none."""
    if duration_s < min_duration_s:
        return []
    interior = gaps(segments, duration_s)
    interior = [g for g in interior if g[0] > 0 and g[1] < duration_s and g[1] - g[0] >= min_silence_s]
    middles = [(a + b) / 2 for a, b in interior]
    points: list[float] = []
    last = 0.0
    while duration_s - last > every_s:
        later = [m for m in middles if m > last]
        if not later:
            break
        target = last + every_s
        last = min(later, key=lambda m: abs(m - target))
        points.append(last)
    return points


def _extremes(lengths: list[float]) -> tuple[float, float, float]:
    if not lengths:
        return 0.0, 0.0, 0.0
    return max(lengths), min(lengths), sum(lengths) / len(lengths)


def file_stats(segments, duration_s: float, cfg) -> dict:
    """The per-file figures of vad.jsonl and vad_stats.csv (seconds relative to the span)."""
    speech = [e - s for s, e in segments]
    silence = [e - s for s, e in gaps(segments, duration_s)]
    speech_s = sum(speech)
    ratio = speech_s / duration_s if duration_s > 0 else 0.0
    max_sp, min_sp, avg_sp = _extremes(speech)
    max_ns, min_ns, avg_ns = _extremes(silence)
    return {
        "speech_ratio": round(ratio, 6),
        "speech_s": round(speech_s, DECIMALS),
        "speech_segment_count": len(segments),
        "max_speech_s": round(max_sp, DECIMALS),
        "min_speech_s": round(min_sp, DECIMALS),
        "avg_speech_s": round(avg_sp, DECIMALS),
        "max_nonspeech_s": round(max_ns, DECIMALS),
        "min_nonspeech_s": round(min_ns, DECIMALS),
        "avg_nonspeech_s": round(avg_ns, DECIMALS),
        "flagged_ns": bool(ratio < FLAG_NS_RATIO or max_sp < FLAG_NS_MAX_SPEECH_S),
        "flagged_1m": bool(duration_s >= FLAG_1M_S),
    }
