"""quality_stats.csv, quality_report.png and the summary figures, from the merged output records (main process)."""
from __future__ import annotations

import csv
import io
from array import array
from collections.abc import Iterable

from .config import DNSMOS_FIELDS, SIGNAL_FIELDS

CSV_COLUMNS = ("audio_filepath", "offset", "duration", *DNSMOS_FIELDS, "dnsmos_windows", *SIGNAL_FIELDS)
PANELS = {
    "dnsmos_sig": ("DNSMOS SIG (speech)", [1 + i * 0.1 for i in range(41)]),
    "dnsmos_bak": ("DNSMOS BAK (background)", [1 + i * 0.1 for i in range(41)]),
    "dnsmos_ovrl": ("DNSMOS OVRL (overall)", [1 + i * 0.1 for i in range(41)]),
    "dnsmos_p808": ("DNSMOS P.808", [1 + i * 0.1 for i in range(41)]),
    "peak_dbfs": ("peak (dBFS)", 40),
    "rms_dbfs": ("RMS (dBFS)", 40),
    "clipping_ratio": ("clipping ratio", 40),
    "bandwidth_hz": ("bandwidth (Hz)", 40),
    "dc_offset": ("DC offset", 40),
}


def build_reports(records: Iterable[dict], dnsmos: bool = True) -> dict[str, bytes]:
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    columns = CSV_COLUMNS if dnsmos else tuple(c for c in CSV_COLUMNS if not c.startswith("dnsmos"))
    writer.writerow(columns)
    values = {k: array("d") for k in PANELS if dnsmos or not k.startswith("dnsmos")}
    for record in records:
        writer.writerow([record.get(c, 0 if c == "offset" else "") for c in columns])
        for key, arr in values.items():
            if isinstance(record.get(key), (int, float)):
                arr.append(record[key])
    return {"quality_stats.csv": text.getvalue().encode("utf-8"), "quality_report.png": plot(values)}


def plot(values: dict[str, array]) -> bytes:
    import matplotlib

    matplotlib.use("Agg")  # no display on cluster nodes
    from matplotlib.figure import Figure

    cols = 3
    rows = -(-len(values) // cols)
    fig = Figure(figsize=(13, 3.4 * rows), dpi=100)
    for i, (key, data) in enumerate(values.items(), 1):
        title, bins = PANELS[key]
        ax = fig.add_subplot(rows, cols, i)
        if len(data):
            ax.hist(data, bins=bins, color="#3b75af", edgecolor="white")
        else:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
        ax.set_title(f"{title} ({len(data)} records)", fontsize=10)
        ax.set_ylabel("count")
        ax.locator_params(axis="x", nbins=5)  # long tick labels (DC offset) would overlap
        ax.yaxis.get_major_locator().set_params(integer=True)
    fig.tight_layout()
    out = io.BytesIO()
    fig.savefig(out, format="png")
    return out.getvalue()


def summarize(records: Iterable[dict]) -> dict:
    sums: dict[str, float] = {}
    n = clipped = narrow = 0
    for record in records:
        n += 1
        for key in (*DNSMOS_FIELDS, "rms_dbfs"):
            if isinstance(record.get(key), (int, float)):
                sums[key] = sums.get(key, 0.0) + record[key]
        clipped += record.get("clipping_ratio", 0) > 0
        narrow += record.get("bandwidth_hz", 1e9) < 6000
    out = {f"mean_{k}": round(v / n, 3) for k, v in sums.items()} if n else {}
    out.update(records_with_clipping=clipped, records_below_6khz_bandwidth=narrow)
    return out

