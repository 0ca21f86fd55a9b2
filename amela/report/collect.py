"""Streaming aggregates for a million records in one pass: fixed-bin histograms, exact totals, seeded reservoirs."""
from __future__ import annotations

import math
import random


class LogHist:
    """Counts on a fixed logarithmic grid (per_decade bins from lo to hi); values outside go to the end bins."""

    def __init__(self, lo: float = 1e-3, hi: float = 1e5, per_decade: int = 10):
        self.lo, self.per_decade = lo, per_decade
        self.n = int(round(math.log10(hi / lo) * per_decade))
        self.counts = [0] * self.n
        self.nonpositive = 0

    def add(self, v: float) -> None:
        if v <= 0:
            self.nonpositive += 1
            return
        i = int(math.floor(math.log10(v / self.lo) * self.per_decade))
        self.counts[min(max(i, 0), self.n - 1)] += 1

    def bins(self) -> tuple[list[float], list[int]]:
        """Edges and counts, trimmed to the occupied range."""
        used = [i for i, c in enumerate(self.counts) if c]
        if not used:
            return [self.lo, self.lo * 10], [0]
        a, b = used[0], used[-1] + 1
        edges = [self.lo * 10 ** (i / self.per_decade) for i in range(a, b + 1)]
        return edges, self.counts[a:b]


class LinHist:
    def __init__(self, lo: float, hi: float, bins: int):
        self.lo, self.hi, self.n = lo, hi, bins
        self.counts = [0] * bins

    def add(self, v: float) -> None:
        i = int((v - self.lo) / (self.hi - self.lo) * self.n)
        self.counts[min(max(i, 0), self.n - 1)] += 1

    def bins(self) -> tuple[list[float], list[int]]:
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
            j = self.rng.randrange(self.seen)
            if j < self.k:
                self.items[j] = item


class Strata:
    """A reservoir per band of a variable: every band is represented, however rare (e.g. files with no speech)."""

    def __init__(self, bands: list[tuple[str, float, float]], k: int, seed: int = 0):
        self.bands = bands
        self.res = [Reservoir(k, seed + i) for i in range(len(bands))]

    def add(self, value: float, item) -> None:
        for (_, lo, hi), res in zip(self.bands, self.res):
            if lo <= value < hi:
                res.add(item)
                return

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
