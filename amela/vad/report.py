"""vad_stats.csv, vad_report.png and the summary figures, from the merged output records (main process)."""
from __future__ import annotations

import csv
import io
from array import array
from collections.abc import Iterable

CSV_COLUMNS = (
    "audio_filepath", "offset", "duration", "speech_ratio", "speech_s", "speech_segment_count",
    "max_speech_s", "min_speech_s", "avg_speech_s", "max_nonspeech_s", "min_nonspeech_s", "avg_nonspeech_s",
    "flagged_ns", "flagged_1m", "split_points",
)


def _row(record: dict) -> list:
    row = [record.get(c, "") for c in CSV_COLUMNS]
    row[1] = record.get("offset", 0)
    row[-1] = " ".join(f"{p:g}" for p in record.get("split_points", []))
    return row


class _Collector:
    """One pass over the outputs: CSV rows streamed out, only numbers kept for the plots."""

    def __init__(self):
        self.ratios, self.file_s, self.segment_s = array("d"), array("d"), array("d")

    def add(self, record: dict) -> None:
        self.ratios.append(record["speech_ratio"])
        self.file_s.append(record["duration"])
        self.segment_s.extend(e - s for s, e in record["speech_segments"])


def build_reports(records: Iterable[dict], cfg=None) -> dict[str, bytes]:
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    data = _Collector()
    for record in records:
        writer.writerow(_row(record))
        data.add(record)
    limits = (cfg.min_segment_s or None, cfg.effective_max_segment_s) if cfg is not None else (None, None)
    return {"vad_stats.csv": text.getvalue().encode("utf-8"), "vad_report.png": plot(data, limits)}


def plot(data: _Collector, segment_limits: tuple = (None, None)) -> bytes:
    import matplotlib

    matplotlib.use("Agg")  # no display on cluster nodes
    from matplotlib.figure import Figure

    fig = Figure(figsize=(13, 3.8), dpi=100)
    panels = (
        (data.ratios, "speech ratio per file", "speech ratio", [i / 20 for i in range(21)]),
        (data.segment_s, f"speech segment durations ({len(data.segment_s)} segments)", "seconds", 40),
        (data.file_s, f"file durations ({len(data.file_s)} files)", "seconds", 40),
    )
    for i, (values, title, xlabel, bins) in enumerate(panels, 1):
        ax = fig.add_subplot(1, 3, i)
        if len(values):
            ax.hist(values, bins=bins, color="#3b75af", edgecolor="white")
        else:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
        if i == 2:  # the configured segment-length range, so one sees the distribution sits inside it
            for limit, label in zip(segment_limits, ("min_segment_s", "max_segment_s")):
                if limit:
                    ax.axvline(limit, color="#c0392b", linestyle="--", linewidth=1)
                    ax.annotate(f"{label} {limit:g}", (limit, 1), xycoords=("data", "axes fraction"),
                                fontsize=7, color="#c0392b", rotation=90, va="top", ha="right")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("count")
    fig.tight_layout()
    out = io.BytesIO()
    fig.savefig(out, format="png")
    return out.getvalue()


def summarize(records: Iterable[dict]) -> dict:
    files = flagged_ns = flagged_1m = split = segments = 0
    audio_s = speech_s = 0.0
    for record in records:
        files += 1
        audio_s += record["duration"]
        speech_s += record["speech_s"]
        segments += len(record["speech_segments"])
        flagged_ns += bool(record["flagged_ns"])
        flagged_1m += bool(record["flagged_1m"])
        split += bool(record["split_points"])
    return {
        "speech_hours": round(speech_s / 3600, 4),
        "speech_ratio": round(speech_s / audio_s, 4) if audio_s else 0.0,
        "speech_segments": segments,
        "flagged_ns": flagged_ns,
        "flagged_1m": flagged_1m,
        "files_with_split_points": split,
    }
