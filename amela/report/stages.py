"""Stage sections: each sees every output record once (add) and renders its part of the page (html); the run's main
section also chooses the variable the listening sample is stratified by (listen) and what to play (clips)."""
from __future__ import annotations

import os

from . import svg
from .collect import LinHist, LogHist, Reservoir, Strata, Top, bands
from .html import duration, e, figures, kv, section, short, table

STRIPS = 10  # files drawn as speech strips
TRANSCRIPTS = 24
EXCERPT_S = 5.0
WER_SAMPLE = 20000  # records whose WER is computed when a run is larger (corpus WER then an estimate)


class Section:
    id, title = "records", "Records"

    def __init__(self, options: dict):
        self.options = options
        self.n = 0
        self.durations = LogHist()

    def add(self, r: dict) -> None:
        self.n += 1
        self.durations.add(float(r.get("duration") or 0))

    def html(self) -> str:
        return section(self.id, self.title, figures(svg.histogram(*self.durations.bins(), "file durations", "seconds",
                                                                  log_x=True)), self.n)

    def listen(self) -> tuple[str, list[tuple[str, dict]]]:
        return "duration", []

    def clips(self, r: dict) -> list[tuple[str, str, float, float]]:
        """(label, audio path, offset_s, seconds) to play for a record: its first seconds by default."""
        return [("audio", r["audio_filepath"], float(r.get("offset") or 0), min(float(r["duration"]), EXCERPT_S))]


class DurationSection(Section):
    """Any stage: file durations; the listening sample is stratified by duration."""

    def __init__(self, options: dict):
        super().__init__(options)
        self.strata = Strata(bands([0, 2, 5, 15, 60, 600], "{:g}s"), 4)

    def add(self, r: dict) -> None:
        super().add(r)
        self.strata.add(float(r.get("duration") or 0), r)

    def listen(self):
        return "file duration", self.strata.picks(12)


class VadSection(Section):
    id, title = "vad", "VAD"

    def __init__(self, options: dict):
        super().__init__(options)
        self.ratio = LinHist(0, 1.0001, 20)
        self.segments = LogHist()
        self.strata = Strata(bands([0, 0.05, 0.25, 0.5, 0.75, 0.9, 1.01], "{:.2g}"), 3)
        self.with_splits = Reservoir(3, seed=7)
        self.speech_s = self.audio_s = 0.0
        self.segment_n = self.split_files = self.flagged_ns = self.flagged_1m = 0

    def add(self, r: dict) -> None:  # the hot path of a million-record report: kept flat
        self.n += 1
        dur = r.get("duration") or 0
        self.durations.add(dur)
        ratio = r.get("speech_ratio") or 0
        self.ratio.add(ratio)
        segs = r.get("speech_segments")
        if segs:
            self.segments.extend([t - s for s, t in segs])
            self.segment_n += len(segs)
        self.speech_s += r.get("speech_s") or 0
        self.audio_s += dur
        if r.get("flagged_ns"):
            self.flagged_ns += 1
        if r.get("flagged_1m"):
            self.flagged_1m += 1
        self.strata.add(ratio, r)  # the record itself: a reservoir keeps only a few dozen
        if r.get("split_points"):
            self.split_files += 1
            self.with_splits.add(r)

    def _strip_sample(self) -> list[tuple[str, dict]]:
        picks = self.strata.picks(STRIPS)
        chosen = {id(r) for _, r in picks}
        for r in self.with_splits.items:  # always show some split points when the run has them
            if id(r) not in chosen and len(picks) < STRIPS + 3:
                picks.append(("has split points", r))
        return picks

    def html(self) -> str:
        figs = figures(
            svg.histogram(*self.ratio.bins(), "speech ratio per file", "speech ratio"),
            svg.histogram(*self.segments.bins(), f"speech segment lengths ({self.segment_n:,})", "seconds", log_x=True),
            svg.histogram(*self.durations.bins(), f"file durations ({self.n:,})", "seconds", log_x=True),
        )
        figures_table = kv([
            ("files", self.n), ("speech", duration(self.speech_s)),
            ("speech ratio (all audio)", round(self.speech_s / self.audio_s, 4) if self.audio_s else None),
            ("speech segments", self.segment_n), ("files with split points", self.split_files),
            ("flagged: no speech", self.flagged_ns), ("flagged: longer than 1 min", self.flagged_1m),
        ])
        strips = []
        for band, r in self._strip_sample():
            label = f"{os.path.basename(r['audio_filepath'])} ({duration(r['duration'])}, speech {r['speech_ratio']:.0%})"
            splits = r.get("split_points") or []
            where = " · split at " + ", ".join(f"{p:g} s" for p in splits) if splits else ""
            plot = svg.strip(r["duration"], r.get("speech_segments") or [], splits, label)
            strips.append(f'<div class="stripbox"><div class="sl"><span class="band">{e(band)}</span> {e(label)}'
                          f"{e(where)}</div>{plot}</div>")
        bands_table = table(["speech ratio band", "files"], [list(x) for x in self.strata.counts()])
        body = (figures_table + figs + "<h3>Speech over time, stratified sample</h3>"
                '<p class="note">Green: speech; red: split points (where long files may be cut). One file per row, '
                "sampled from each speech-ratio band.</p>" + "".join(strips) + bands_table)
        return section(self.id, self.title, body, self.n)

    def listen(self):
        return "speech ratio", self.strata.picks(12)

    def clips(self, r):
        segs = r.get("speech_segments") or []
        start = max(segs[0][0] - 0.3, 0.0) if segs else 0.0  # start where speech starts: more to hear
        length = min(EXCERPT_S, float(r["duration"]) - start)
        return [("audio", r["audio_filepath"], float(r.get("offset") or 0) + start, max(length, 0.1))]


class AsrSection(Section):
    id, title = "asr", "ASR"

    def __init__(self, options: dict):
        super().__init__(options)
        self.hyp_key = options.get("text_key") or "text"
        self.ref_key = "text" if self.hyp_key != "text" else None
        self.with_ref = 0
        self.wer_sample = Reservoir(WER_SAMPLE, seed=3)
        self.cps = LogHist(0.1, 1000, 10)
        self.sample = Reservoir(TRANSCRIPTS * 4, seed=5)
        self.longest, self.emptiest = Top(5), Top(5)
        self.empty = 0

    def add(self, r: dict) -> None:
        super().add(r)
        hyp = r.get(self.hyp_key) if isinstance(r.get(self.hyp_key), str) else ""
        dur = float(r.get("duration") or 0)
        slim = {"audio_filepath": r["audio_filepath"], "offset": r.get("offset"), "duration": dur, "hyp": hyp,
                "ref": r.get(self.ref_key) if self.ref_key else None}
        self.empty += not hyp.strip()
        if dur > 0:
            self.cps.add(len(hyp) / dur)
        self.sample.add(slim)
        self.longest.add(len(hyp), slim)
        if dur >= 1.0:
            self.emptiest.add(-len(hyp) / dur, slim)
        if isinstance(slim["ref"], str):
            self.with_ref += 1
            self.wer_sample.add(slim)

    def _score(self) -> tuple[dict | None, list[dict]]:
        if not self.with_ref:
            return None, []
        from ..asr.eval import evaluate

        rows, summary = evaluate(self.wer_sample.items, "ref", "hyp")
        return summary, rows

    def html(self) -> str:
        summary, scored = self._score()
        self._scored = scored
        pairs = [("records", self.n), ("empty transcripts", self.empty), ("transcript key", self.hyp_key)]
        figs = [svg.histogram(*self.cps.bins(), "characters per second of audio", "chars/s", log_x=True),
                svg.histogram(*self.durations.bins(), "durations", "seconds", log_x=True)]
        if summary:
            est = "" if len(scored) >= self.with_ref else f" (estimated on a random {len(scored):,} of {self.with_ref:,})"
            pairs += [("references (key 'text')", self.with_ref), ("WER" + est, summary["wer"]),
                      ("CER" + est, summary["cer"])]
            wers = LinHist(0, 1.0001, 20)
            for row in scored:
                if row["wer"] is not None:
                    wers.add(min(row["wer"], 1.0))
            figs.insert(0, svg.histogram(*wers.bins(), "WER per record (capped at 1)", "WER"))
        rows_src = self._transcript_rows(scored)
        headers = ["band", "file", "duration", "transcript"] + (["reference", "WER", "CER"] if summary else [])
        body = kv(pairs) + figures(*figs) + "<h3>Transcripts, stratified sample</h3>" + table(headers, rows_src, "tx")
        flagged = [["longest", os.path.basename(r["audio_filepath"]), round(r["duration"], 2), short(r["hyp"])]
                   for _, r in self.longest.items]
        flagged += [["emptiest", os.path.basename(r["audio_filepath"]), round(r["duration"], 2), short(r["hyp"]) or "(empty)"]
                    for _, r in self.emptiest.items]
        body += "<h3>Flagged outputs</h3>" + table(["why", "file", "duration", "transcript"], flagged, "tx")
        return section(self.id, self.title, body, self.n,
                       "WER/CER after Whisper English normalisation, as `amela asr-eval`." if summary else "")

    def _transcript_rows(self, scored: list[dict]) -> list[list]:
        if scored:
            strata = Strata(bands([0, 0.05, 0.2, 0.5, 1.0, 1e9], "{:g}"), TRANSCRIPTS)
            for row in scored:
                strata.add(row["wer"] if row["wer"] is not None else 1e8, row)
            self._picks = strata.picks(TRANSCRIPTS)
            return [[b, os.path.basename(r["audio_filepath"]), round(r["duration"], 2), short(r["hyp"]),
                     short(r["ref"]), r["wer"], r["cer"]] for b, r in self._picks]
        strata = Strata(bands([0, 2, 5, 15, 60, 1e9], "{:g}s"), TRANSCRIPTS)
        for r in self.sample.items:
            strata.add(r["duration"], r)
        self._picks = strata.picks(TRANSCRIPTS)
        return [[b, os.path.basename(r["audio_filepath"]), round(r["duration"], 2), short(r["hyp"])]
                for b, r in self._picks]

    def listen(self):
        if not hasattr(self, "_picks"):
            self.html()
        return ("WER band" if self.with_ref else "duration"), self._picks[:12]


class S2SSection(Section):
    id, title = "s2s", "S2S"

    def __init__(self, options: dict):
        super().__init__(options)
        self.mode = options.get("mode", "encode")
        self.ups = LinHist(0, 100, 50)
        self.units = 0
        self.source_s = 0.0
        self.sample = Strata(bands([0, 5, 15, 60, 1e9], "{:g}s"), 4)

    def add(self, r: dict) -> None:
        super().add(r)
        units = r.get("units") or []
        src_s = float(r.get("source_duration") or r.get("duration") or 0)
        self.units += len(units)
        self.source_s += src_s
        if src_s > 0 and units:
            self.ups.add(len(units) / src_s)
        slim = {k: r.get(k) for k in ("audio_filepath", "duration", "offset", "source_audio_filepath",
                                      "source_duration", "source_offset") if k in r}
        slim["n_units"] = len(units)
        self.sample.add(src_s, slim)

    def html(self) -> str:
        pairs = [("mode", self.mode), ("records", self.n), ("units (deduplicated)", self.units),
                 ("units per second of source audio", round(self.units / self.source_s, 2) if self.source_s else None)]
        rows = [[b, os.path.basename(r.get("source_audio_filepath") or r["audio_filepath"]),
                 round(float(r.get("source_duration") or r["duration"]), 2),
                 round(float(r["duration"]), 2) if r.get("source_audio_filepath") else None, r["n_units"]]
                for b, r in self.sample.picks(12)]
        body = (kv(pairs) + figures(svg.histogram(*self.ups.bins(), "units per second (deduplicated)", "units/s"),
                                    svg.histogram(*self.durations.bins(), "durations", "seconds", log_x=True))
                + table(["band", "source file", "source s", "resynth s", "units"], rows))
        return section(self.id, self.title, body, self.n,
                       "Source vs resynthesised pairs are in Listening." if self.mode != "encode" else "")

    def listen(self):
        return "source duration", self.sample.picks(8)

    def clips(self, r):
        if not r.get("source_audio_filepath"):
            return super().clips(r)
        off = float(r.get("source_offset") or 0)
        n = min(float(r["source_duration"]), EXCERPT_S)
        return [("source", r["source_audio_filepath"], off, n), ("resynthesised", r["audio_filepath"], 0.0,
                                                                 min(float(r["duration"]), EXCERPT_S))]


# The quality stage's fields (amela/quality/stage.py) and S2S --quality's, flat in the records under the names the
# filter language uses; the first present of PREFERRED_MAIN chooses the listening bands.
QUALITY_STAGE_FIELDS = frozenset(
    [f"{p}dnsmos_{k}{s}" for k in ("sig", "bak", "ovrl", "p808") for p, s in (("", ""), ("source_", ""), ("", "_delta"))]
    + ["peak_dbfs", "rms_dbfs", "clipping_ratio", "bandwidth_hz", "dc_offset"])
PREFERRED_MAIN = ("dnsmos_ovrl_delta", "dnsmos_ovrl")


class QualitySection(Section):
    """Scores of a quality stage (numeric fields under `quality`, named quality_*, or the quality stage's own fields):
    distributions and bands."""

    id, title = "quality", "Quality"

    def __init__(self, options: dict):
        super().__init__(options)
        self.fields: dict[str, tuple[Reservoir, list]] = {}
        self._flat_keys: dict[tuple, tuple] = {}  # key layout -> its quality_* keys (records share a few layouts)
        self.pool = Reservoir(2000, seed=13)  # (main score, record): quartile bands at the end (range unknown)
        self.main: str | None = None

    def scores(self, r: dict) -> dict:
        layout = tuple(r)
        flat = self._flat_keys.get(layout)
        if flat is None:
            if len(self._flat_keys) > 4096:
                self._flat_keys.clear()
            flat = self._flat_keys[layout] = tuple(k for k in layout if k.startswith("quality_")
                                                   or k in QUALITY_STAGE_FIELDS)
        q = r.get("quality")
        if not flat and not isinstance(q, dict):
            return {}
        out = {f"quality.{k}": v for k, v in q.items()} if isinstance(q, dict) else {}
        out.update({k: r[k] for k in flat})
        return {k: float(v) for k, v in out.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}

    def add(self, r: dict) -> None:
        s = self.scores(r)
        if not s:
            return
        super().add(r)
        for k, v in s.items():
            res, mm = self.fields.setdefault(k, (Reservoir(5000, seed=11), [v, v, 0.0, 0]))
            res.add(v)
            mm[0], mm[1], mm[2], mm[3] = min(mm[0], v), max(mm[1], v), mm[2] + v, mm[3] + 1
        if self.main is None:
            self.main = next((k for k in PREFERRED_MAIN if k in s), next(iter(s)))
        if self.main in s:
            self.pool.add((s[self.main], r))

    def html(self) -> str:
        rows, figs = [], []
        for k, (res, (lo, hi, total, n)) in sorted(self.fields.items()):
            rows.append([k, n, round(lo, 4), round(total / n, 4), round(hi, 4)])
            h = LinHist(lo, hi + 1e-9 if hi > lo else lo + 1, 20)
            for v in res.items:
                h.add(v)
            figs.append(svg.histogram(*h.bins(), k + (" (sample)" if res.seen > len(res.items) else ""), k))
        body = table(["score", "records", "min", "mean", "max"], rows) + figures(*figs[:6])
        return section(self.id, self.title, body, self.n)

    def listen(self):
        """Quartiles of the main score (its range is not known in advance), three records from each."""
        ranked = sorted(self.pool.items, key=lambda t: t[0])
        if not ranked:
            return f"{self.main} band", []
        q = [ranked[len(ranked) * k // 4:len(ranked) * (k + 1) // 4] for k in range(4)]
        strata = [(f"{part[0][0]:.3g}–{part[-1][0]:.3g}", [r for _, r in part]) for part in q if part]
        picks = [(label, recs[(len(recs) * j) // 3]) for j in range(3) for label, recs in strata if recs]
        return f"{self.main} quartile", picks[:12]


def sections_for(stage: str, options: dict) -> list[Section]:
    """The run's main section first (it chooses the listening variable), then quality if records carry scores."""
    main = {"vad": VadSection, "asr": AsrSection, "s2s": S2SSection, "quality": QualitySection}.get(stage,
                                                                                                    DurationSection)
    out = [main(options)]
    if main is not QualitySection:
        out.append(QualitySection(options))
    return out

