"""S2S `--quality` (resynth mode): DNSMOS of each resynthesised file and of its source span, and how much of the
source's quality resynthesis keeps over a run (the mean and the distribution of the differences)."""
from __future__ import annotations

import csv
import io
from array import array
from collections.abc import Iterable

import numpy as np

from .dnsmos import Dnsmos

SCORES = ("sig", "bak", "ovrl", "p808")
HOP_S = 9.01  # the quality stage's default hop (see docs/quality.md for its tolerance against the 1 s hop)


class ResynthScorer:
    """One onnxruntime session pair per S2S worker, built in its setup(), sized to the worker's share of cores."""

    def __init__(self):
        from .stage import worker_threads

        self.dnsmos = Dnsmos(threads=worker_threads())

    def compare(self, source: np.ndarray, resynth_path: str) -> dict:
        """Fields for the output record: dnsmos_* of the resynthesised file, source_dnsmos_* of the source span
        (its 16 kHz samples as the units were made from them: the same channel, decoded once), dnsmos_*_delta =
        resynthesised - source."""
        from .audio import read_span

        src = np.clip(source, -1.0, 1.0)  # as the quality stage scores: DNSMOS expects [-1, 1]
        out, _ = read_span({"audio_filepath": resynth_path}, None, 1.0)
        theirs, ours = self.dnsmos.score([src, out], HOP_S)
        fields = {}
        for key in SCORES:
            a, b = getattr(ours, key), getattr(theirs, key)
            fields[f"dnsmos_{key}"] = round(a, 5)
            fields[f"source_dnsmos_{key}"] = round(b, 5)
            fields[f"dnsmos_{key}_delta"] = round(a - b, 5)
        return fields


def _deltas(records: Iterable[dict]) -> dict[str, array]:
    deltas = {k: array("d") for k in SCORES}
    for r in records:
        for k in SCORES:
            value = r.get(f"dnsmos_{k}_delta")
            if isinstance(value, (int, float)):
                deltas[k].append(value)
    return deltas


def summary(records: Iterable[dict]) -> dict:
    """Mean and 10th / 50th / 90th percentiles of each difference (resynthesised - source)."""
    out = {}
    for k, values in _deltas(records).items():
        if len(values):
            p10, p50, p90 = np.percentile(values, [10, 50, 90])
            out[f"dnsmos_{k}_delta"] = (f"mean {np.mean(values):+.3f}, p10 {p10:+.3f}, median {p50:+.3f}, "
                                        f"p90 {p90:+.3f} (n={len(values)})")
    return out


def reports(records_fn) -> dict[str, bytes]:
    """s2s_quality.csv (one row per record: source and resynthesised scores) and s2s_quality.png (histograms)."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    columns = ["source_audio_filepath", "audio_filepath"] + [f"{p}dnsmos_{k}{s}" for k in SCORES
                                                            for p, s in (("source_", ""), ("", ""), ("", "_delta"))]
    writer.writerow(columns)
    for r in records_fn():
        writer.writerow([r.get(c, "") for c in columns])
    return {"s2s_quality.csv": text.getvalue().encode("utf-8"), "s2s_quality.png": _plot(_deltas(records_fn()))}


def _plot(deltas: dict[str, array]) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(13, 3.4), dpi=100)
    for i, (k, values) in enumerate(deltas.items(), 1):
        ax = fig.add_subplot(1, len(deltas), i)
        if len(values):
            ax.hist(values, bins=30, color="#3b75af", edgecolor="white")
            ax.axvline(float(np.mean(values)), color="#c0392b", label=f"mean {np.mean(values):+.2f}")
            ax.legend(fontsize=8)
        else:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
        ax.set_title(f"DNSMOS {k.upper()}: resynthesised - source", fontsize=9)
        ax.set_ylabel("count")
    fig.tight_layout()
    out = io.BytesIO()
    fig.savefig(out, format="png")
    return out.getvalue()
