"""Scoring VAD options against reference labels on a 10 ms grid, a grid search over stored probabilities, and
k-fold cross-validation over files (pure numpy; no model, no files).

Each 10 ms cell of a file is scored at its centre: reference speech if a labelled interval holds that instant,
predicted speech if a segment does. Counts (tp, fp, fn, tn) are kept per file and per option set, so pooled scores,
per-file scores and cross-validation are sums over rows of one matrix.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from ..config import from_dict, to_dict
from ..errors import ConfigError
from .config import VadConfig
from .segments import decide, postprocess, raw_segments

GRID_S = 0.01
# The options a tune searches by default (values people actually use; invalid pairs such as neg >= threshold skipped)
DEFAULT_GRID = {
    "threshold": [0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8],
    "neg_threshold": [None, 0.15, 0.25, 0.35, 0.45],
    "min_speech_s": [0.0, 0.1, 0.25],
    "min_silence_s": [0.0, 0.1, 0.2, 0.4],
    "pad_s": [0.0, 0.03, 0.06, 0.1],
}
OBJECTIVES = ("f1", "f2", "f0.5", "accuracy")


@dataclass
class Scored:
    """One labelled span with its stored probabilities and the reference on the 10 ms grid."""

    name: str
    probs: np.ndarray
    duration_s: float
    times: np.ndarray  # cell centres, seconds from the span's start
    truth: np.ndarray  # bool per cell


def grid_times(duration_s: float) -> np.ndarray:
    return (np.arange(int(duration_s / GRID_S + 1e-9)) + 0.5) * GRID_S


def inside(intervals, times: np.ndarray) -> np.ndarray:
    """Which of `times` fall in one of the sorted, disjoint [start, end) intervals."""
    if not intervals:
        return np.zeros(len(times), bool)
    arr = np.asarray(intervals, np.float64)
    k = np.searchsorted(arr[:, 0], times, side="right") - 1
    return (k >= 0) & (times < arr[np.maximum(k, 0), 1])


def scored(name: str, probs, duration_s: float, offset_s: float, speech_file_s) -> Scored:
    times = grid_times(duration_s)
    truth = inside([[s - offset_s, e - offset_s] for s, e in speech_file_s], times)
    return Scored(name, np.asarray(probs, np.float32), duration_s, times, truth)


def counts(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    tp = int(np.count_nonzero(pred & truth))
    fp = int(np.count_nonzero(pred & ~truth))
    fn = int(np.count_nonzero(~pred & truth))
    return np.array([tp, fp, fn, len(truth) - tp - fp - fn], np.int64)


def prf(c) -> tuple[float, float, float]:
    tp, fp, fn = int(c[0]), int(c[1]), int(c[2])
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def objective(c, name: str = "f1") -> float:
    """The score to maximise from pooled counts: F-beta (f1, f2 favours recall, f0.5 precision) or accuracy."""
    if name == "accuracy":
        total = int(np.sum(c))
        return (int(c[0]) + int(c[3])) / total if total else 0.0
    beta = float(name[1:])
    tp, fp, fn = int(c[0]), int(c[1]), int(c[2])
    denom = (1 + beta ** 2) * tp + beta ** 2 * fn + fp
    return (1 + beta ** 2) * tp / denom if denom else 0.0


def check_grid(grid: dict, source: str) -> dict:
    fields = set(to_dict(VadConfig()))
    tunable = sorted(fields - {"hop_size", "channel", "batch_size", "segments", "save_probs"})
    out = {}
    for key, values in grid.items():
        if key not in tunable:
            raise ConfigError(f"{source}: {key!r} cannot be tuned; valid keys: {', '.join(tunable)}")
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{source}: {key} must be a non-empty list of values, got {values!r}")
        out[key] = values
    return out


def option_sets(grid: dict, base: dict) -> list[VadConfig]:
    """Every valid combination of the grid's values over `base` (duplicates and invalid pairs skipped)."""
    keys = list(grid)
    configs, seen = [], set()
    for values in itertools.product(*(grid[k] for k in keys)):
        combo = dict(zip(keys, values))
        neg, thr = combo.get("neg_threshold", base.get("neg_threshold")), combo.get("threshold", base.get("threshold", 0.5))
        if neg is not None and neg >= thr:
            continue  # the same as no hysteresis, which the grid holds as None
        try:
            cfg = from_dict(VadConfig, {**base, **combo}, "grid")
        except ConfigError:
            continue
        key = tuple(sorted(to_dict(cfg).items(), key=lambda kv: kv[0]))
        if key not in seen:
            seen.add(key)
            configs.append(cfg)
    return configs


def score_matrix(items: list[Scored], configs: list[VadConfig]) -> np.ndarray:
    """counts[item, config] = (tp, fp, fn, tn). Decisions are computed once per (threshold, neg_threshold)."""
    out = np.zeros((len(items), len(configs), 4), np.int64)
    groups: dict[tuple, list[int]] = {}
    for j, cfg in enumerate(configs):
        groups.setdefault((cfg.threshold, cfg.neg_threshold, cfg.hop_size), []).append(j)
    for i, item in enumerate(items):
        for (thr, neg, _), js in groups.items():
            frame_s = configs[js[0]].frame_s
            raw = raw_segments(decide(item.probs, thr, neg), frame_s)
            for j in js:
                segs = postprocess([list(s) for s in raw], item.probs, frame_s, item.duration_s, configs[j])
                out[i, j] = counts(inside(segs, item.times), item.truth)
    return out


def best_index(pooled: np.ndarray, name: str) -> int:
    """The best option set; ties go to the first (the grid's order: smaller values first)."""
    scores = np.array([objective(c, name) for c in pooled])
    return int(np.argmax(scores))


def folds_of(n_items: int, k: int) -> list[np.ndarray]:
    """k folds of item positions, round robin over the (sorted) items: deterministic."""
    return [np.arange(f, n_items, k) for f in range(k)]


def cross_validate(matrix: np.ndarray, name: str, k: int) -> tuple[np.ndarray, list[int]]:
    """Pooled held-out counts (each fold scored with the options chosen on the other folds) and each fold's choice."""
    held_out = np.zeros(4, np.int64)
    chosen = []
    for fold in folds_of(matrix.shape[0], k):
        train = np.setdiff1d(np.arange(matrix.shape[0]), fold)
        j = best_index(matrix[train].sum(axis=0), name)
        chosen.append(j)
        held_out += matrix[fold, j].sum(axis=0)
    return held_out, chosen


def importance(configs: list[VadConfig], keys: list[str], scores: np.ndarray) -> list[tuple[str, float]]:
    """Options by how much the best score moves with their value (max over values of the best score with that
    value, minus the min): the ones worth plotting."""
    out = []
    for key in keys:
        best: dict = {}
        for cfg, s in zip(configs, scores):
            v = getattr(cfg, key)
            best[v] = max(best.get(v, -1.0), s)
        out.append((key, (max(best.values()) - min(best.values())) if len(best) > 1 else 0.0))
    return sorted(out, key=lambda kv: -kv[1])
