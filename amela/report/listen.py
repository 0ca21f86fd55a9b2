"""Listening: short excerpts of a stratified sample, encoded as low-bit-rate Ogg Opus and embedded as data: URIs.

Only the excerpt is read (seek + a few seconds), so a sample of hour-long files costs what a few seconds cost. A file
that cannot be read (moved, on another machine) is shown with the reason instead of a player; the report goes on.
"""
from __future__ import annotations

import base64
import io
import os

from .html import e, section, short

# libsndfile maps 0..1 to the bit rate, high = small: measured on speech at 16 kHz mono, 0.8 ~ 58 kbit/s,
# 0.95 ~ 18, 0.96 ~ 16, 1.0 ~ 7 kbit/s. 16 kbit/s Opus is clear speech and 2 KB per second.
OPUS_COMPRESSION = 0.96
TOTAL_CAP_BYTES = 1_500_000  # all excerpts together, before base64 (which adds a third)
SHOWN_KEYS = ("duration", "offset", "speech_ratio", "speech_segment_count", "text", "pred_text", "wer", "n_units",
              "source_duration", "hyp", "ref")


def excerpt(path: str, offset_s: float, seconds: float) -> bytes:
    """`seconds` of `path` from `offset_s` as Ogg Opus, 16 kHz mono (read by amela/audio.py, like every stage)."""
    import numpy as np
    import soundfile as sf

    from ..audio import SAMPLE_RATE, read_span

    if not seconds > 0:
        raise ValueError(f"no samples at {offset_s:.2f} s")
    audio = read_span({"audio_filepath": path, "offset": offset_s, "duration": seconds}, SAMPLE_RATE)
    buf = io.BytesIO()
    sf.write(buf, np.clip(audio, -1, 1), SAMPLE_RATE, format="OGG", subtype="OPUS", compression_level=OPUS_COMPRESSION)
    return buf.getvalue()


def render(main, variable: str, picks: list[tuple[str, dict]], cap_bytes: int = TOTAL_CAP_BYTES) -> str:
    used, items, skipped = 0, [], 0
    for band, record in picks:
        players = []
        for label, path, offset_s, seconds in main.clips(record):
            if used >= cap_bytes:
                skipped += 1
                players = None
                break
            try:
                data = excerpt(path, offset_s, seconds)
            except Exception as exc:  # noqa: BLE001 - any unreadable file: say why beside the record, go on
                players.append(f'<div class="na">{e(label)}: not playable here ({e(short(str(exc), 160))})</div>')
                continue
            used += len(data)
            src = "data:audio/ogg;codecs=opus;base64," + base64.b64encode(data).decode()
            players.append(f'<div class="clip"><span>{e(label)} · {seconds:.1f} s from {offset_s:.1f} s</span>'
                           f'<audio controls preload="metadata" src="{src}"></audio></div>')
        if players is None:
            break
        shown = {k: record[k] for k in SHOWN_KEYS if record.get(k) not in (None, "")}
        items.append(f'<div class="listen"><div class="meta"><span class="band">{e(band)}</span> '
                     f'<b>{e(os.path.basename(record.get("audio_filepath", "")))}</b>'
                     f'<div class="path">{e(record.get("audio_filepath", ""))}</div>'
                     f'<pre>{e(_compact(shown))}</pre></div><div class="players">{"".join(players)}</div></div>')
    note = (f"A sample stratified by {e(variable)}: up to a few seconds of each, Ogg Opus at about 16 kbit/s "
            f"({used / 1e6:.2f} MB in all).")
    if skipped:
        note += f" The size cap ({cap_bytes / 1e6:.1f} MB) stopped the sample early."
    if not items:
        return section("listening", "Listening", "<p>No records to listen to.</p>", 0, note)
    return section("listening", "Listening", "".join(items), len(items), note)


def _compact(d: dict) -> str:
    out = []
    for k, v in d.items():
        if isinstance(v, float):
            v = round(v, 3)
        out.append(f"{k}: {short(str(v), 240)}")
    return "\n".join(out)
