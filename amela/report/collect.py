"""Streaming aggregates for a million records in one pass: fixed-bin histograms, exact totals, seeded reservoirs."""
from __future__ import annotations

import bisect
import math
import random


class _Hist:
    """Values are buffered and binned with numpy in blocks: a million records stay a few seconds of work."""

    BLOCK = 1 << 16

    def __init__(self, n: int):
        self.counts = [0] * n
        self.buf: list[float] = []

    def add(self, v: float) -> None:
        self.buf.append(v)
        if len(self.buf) >= self.BLOCK:
            self._flush()

    def extend(self, values) -> None:
        self.buf.extend(values)
        if len(self.buf) >= self.BLOCK:
            self._flush()

    def _flush(self) -> None:
        import numpy as np

        if self.buf:
            idx = self._index(np.asarray(self.buf, dtype=np.float64))
            for i, c in enumerate(np.bincount(idx, minlength=len(self.counts)).tolist()):
                self.counts[i] += c
            self.buf = []


class LogHist(_Hist):
    """Counts on a fixed logarithmic grid (per_decade bins from lo to hi); values outside go to the end bins."""

    def __init__(self, lo: float = 1e-3, hi: float = 1e5, per_decade: int = 10):
        self.lo, self.per_decade = lo, per_decade
        self.n = int(round(math.log10(hi / lo) * per_decade))
        super().__init__(self.n)
        self.nonpositive = 0

    def _index(self, v):
        import numpy as np

        pos = v > 0
        self.nonpositive += int((~pos).sum())
        i = np.floor(np.log10(v[pos] / self.lo) * self.per_decade)
        return np.clip(i, 0, self.n - 1).astype(np.int64)

    def bins(self) -> tuple[list[float], list[int]]:
        """Edges and counts, trimmed to the occupied range."""
        self._flush()
        used = [i for i, c in enumerate(self.counts) if c]
        if not used:
            return [self.lo, self.lo * 10], [0]
        a, b = used[0], used[-1] + 1
        edges = [self.lo * 10 ** (i / self.per_decade) for i in range(a, b + 1)]
        return edges, self.counts[a:b]


class LinHist(_Hist):
    def __init__(self, lo: float, hi: float, bins: int):
        self.lo, self.hi, self.n = lo, hi, bins
        super().__init__(bins)

    def _index(self, v):
        import numpy as np

        return np.clip(np.floor((v - self.lo) / (self.hi - self.lo) * self.n), 0, self.n - 1).astype(np.int64)

    def bins(self) -> tuple[list[float], list[int]]:
        self._flush()
        step = (self.hi - self.lo) / self.n
        return [self.lo + i * step for i in range(self.n + 1)], list(self.counts)


class Reservoir:
    """A uniform sample of k items from a stream of unknown length (seeded: the same run gives the same report)."""

    def __init__(self, k: int, seed: int = 0):
        self.k, self.seen, self.items = k, 0, []
        self.rng = random.Random(seed)

    def add(self, item) -> None:
        self.seen += 1
        if len(self.items) < self.k:
            self.items.append(item)
        else:
            j = int(self.rng.random() * self.seen)  # random() is ~3x faster than randrange()
            if j < self.k:
                self.items[j] = item


class Strata:
    """A reservoir per band of a variable: every band is represented, however rare (e.g. files with no speech)."""

    def __init__(self, bands: list[tuple[str, float, float]], k: int, seed: int = 0):
        self.bands = bands
        self.res = [Reservoir(k, seed + i) for i in range(len(bands))]
        self.lows = [lo for _, lo, _ in bands]

    def add(self, value: float, item) -> None:
        i = bisect.bisect_right(self.lows, value) - 1
        if i >= 0 and value < self.bands[i][2]:
            self.res[i].add(item)

    def picks(self, total: int) -> list[tuple[str, object]]:
        """Up to `total` items, round-robin over the bands (so each band gets its share)."""
        out: list[tuple[str, object]] = []
        depth = 0
        while len(out) < total and any(depth < len(r.items) for r in self.res):
            for (name, _, _), res in zip(self.bands, self.res):
                if depth < len(res.items) and len(out) < total:
                    out.append((name, res.items[depth]))
            depth += 1
        return out

    def counts(self) -> list[tuple[str, int]]:
        return [(name, r.seen) for (name, _, _), r in zip(self.bands, self.res)]


class Top:
    """The k items with the largest keys (ties: first seen)."""

    def __init__(self, k: int):
        self.k, self.items = k, []

    def add(self, key: float, item) -> None:
        if len(self.items) < self.k or key > self.items[-1][0]:
            self.items.append((key, item))
            self.items.sort(key=lambda t: -t[0])
            del self.items[self.k:]


def bands(edges: list[float], fmt: str = "{:g}") -> list[tuple[str, float, float]]:
    """[(label, lo, hi)] for consecutive edges; the last band is closed on the right."""
    out = []
    for i in range(len(edges) - 1):
        lo, hi = edges[i], edges[i + 1]
        if hi >= 1e8:  # open-ended bands
            label = f"≥ {fmt.format(lo)}"
        elif lo <= -1e8:
            label = f"< {fmt.format(hi)}"
        else:
            label = f"{fmt.format(lo)}–{fmt.format(hi)}"
        out.append((label, lo, hi if i < len(edges) - 2 else math.inf))
    return out
