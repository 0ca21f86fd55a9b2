"""WER and CER per record and over the corpus, after Whisper-style English normalisation (jiwer aligns).

Corpus figures are micro-averaged: total errors over total reference words (characters), as the Open ASR Leaderboard
and the original AMELA evaluation report them, not a mean of per-record rates.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError
from ..manifest import dumps, iter_jsonl, write_bytes_atomic, write_jsonl_atomic
from ..paths import RunPaths

NORMALIZERS = ("whisper", "basic", "none")


def normalizer(kind: str):
    """str -> str: 'whisper' = Whisper's English normaliser, 'basic' = its language-neutral one, 'none' = as is."""
    if kind == "none":
        return lambda s: " ".join(s.split())
    try:
        from whisper_normalizer.basic import BasicTextNormalizer
        from whisper_normalizer.english import EnglishTextNormalizer
    except ImportError as exc:
        raise ConfigError("asr-eval: the whisper_normalizer package is missing: pip install whisper_normalizer "
                          "(or use --normalize none)") from exc
    norm = EnglishTextNormalizer() if kind == "whisper" else BasicTextNormalizer()
    return lambda s: " ".join(norm(s).split())


@dataclass
class Counts:
    """Edit operations between one reference and one hypothesis (words or characters)."""

    ref: int = 0
    sub: int = 0
    dele: int = 0
    ins: int = 0

    @property
    def errors(self) -> int:
        return self.sub + self.dele + self.ins

    def rate(self) -> float | None:
        return self.errors / self.ref if self.ref else None

    def add(self, other: Counts) -> None:
        self.ref += other.ref
        self.sub += other.sub
        self.dele += other.dele
        self.ins += other.ins


def word_counts(ref: str, hyp: str) -> Counts:
    import jiwer

    if not ref.split():  # jiwer refuses an empty reference: every hypothesis word is an insertion
        return Counts(0, 0, 0, len(hyp.split()))
    out = jiwer.process_words(ref, hyp)
    return Counts(out.hits + out.substitutions + out.deletions, out.substitutions, out.deletions, out.insertions)


def char_counts(ref: str, hyp: str) -> Counts:
    import jiwer

    if not ref:
        return Counts(0, 0, 0, len(hyp))
    out = jiwer.process_characters(ref, hyp)
    return Counts(out.hits + out.substitutions + out.deletions, out.substitutions, out.deletions, out.insertions)


def resolve_input(path: str, stage: str = "asr") -> tuple[Path, Path]:
    """(manifest to read, prefix for outputs): a run directory's <stage>.jsonl, or a manifest file itself."""
    p = Path(path)
    if p.is_dir():
        manifest = p / f"{stage}.jsonl"
        if not manifest.is_file():
            raise ConfigError(f"asr-eval: {p} has no {stage}.jsonl (is the run finished? `amela status {p}`)")
        return manifest, p / "asr_eval"
    if not p.is_file():
        raise ConfigError(f"asr-eval: {p} is neither a run directory nor a manifest file")
    return p, p.with_name(p.name.rsplit(".", 1)[0] + ".eval")


def evaluate(records, ref_key: str, hyp_key: str, normalize: str = "whisper") -> tuple[list[dict], dict]:
    """Per-record rows and the summary. A record without ref_key is skipped (counted); a missing hyp is empty."""
    norm = normalizer(normalize)
    words, chars = Counts(), Counts()
    rows, skipped, missing_hyp = [], 0, 0
    for record in records:
        if not isinstance(record.get(ref_key), str):
            skipped += 1
            continue
        hyp_raw = record.get(hyp_key)
        missing_hyp += not isinstance(hyp_raw, str)
        ref, hyp = norm(record[ref_key]), norm(hyp_raw if isinstance(hyp_raw, str) else "")
        w, c = word_counts(ref, hyp), char_counts(ref, hyp)
        words.add(w)
        chars.add(c)
        rows.append({**record, "ref_norm": ref, "hyp_norm": hyp, "wer": _round(w.rate()), "cer": _round(c.rate()),
                     "word_errors": w.errors, "ref_words": w.ref, "substitutions": w.sub, "deletions": w.dele,
                     "insertions": w.ins})
    summary = {
        "records": len(rows), "skipped_no_reference": skipped, "missing_hypothesis": missing_hyp,
        "ref_key": ref_key, "hyp_key": hyp_key, "normalize": normalize,
        "wer": _round(words.rate()), "cer": _round(chars.rate()),
        "ref_words": words.ref, "word_errors": words.errors, "substitutions": words.sub, "deletions": words.dele,
        "insertions": words.ins, "ref_chars": chars.ref, "char_errors": chars.errors,
    }
    return rows, summary


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 6)


def run_eval(path: str, ref_key: str, hyp_key: str, normalize: str = "whisper", out: str | None = None,
             stage: str = "asr") -> tuple[dict, Path, Path]:
    """Evaluate a run directory or manifest; writes <prefix>.jsonl and <prefix>.json atomically."""
    if ref_key == hyp_key:
        raise ConfigError(f"asr-eval: --ref-key and --hyp-key are both {ref_key!r}")
    manifest, prefix = resolve_input(path, stage)
    if out:
        prefix = Path(os.path.abspath(out))
    rows, summary = evaluate(iter_jsonl(manifest), ref_key, hyp_key, normalize)
    if not rows:
        raise ConfigError(f"asr-eval: no record of {manifest} has a string {ref_key!r} to compare with")
    summary["manifest"] = str(manifest)
    failures = RunPaths(path).failures
    if Path(path).is_dir() and failures.is_file():  # failed items are not in asr.jsonl: say how many were left out
        summary["failed_records_not_scored"] = sum(1 for _ in iter_jsonl(failures))
    per_record, summary_path = Path(f"{prefix}.jsonl"), Path(f"{prefix}.json")
    write_jsonl_atomic(per_record, rows)
    write_bytes_atomic(summary_path, dumps(summary) + b"\n")
    return summary, per_record, summary_path


def format_summary(summary: dict) -> str:
    def pct(x):
        return "n/a" if x is None else f"{100 * x:.2f}%"

    lines = [f"WER {pct(summary['wer'])}  ({summary['word_errors']} errors / {summary['ref_words']} reference words: "
             f"{summary['substitutions']} sub, {summary['deletions']} del, {summary['insertions']} ins)",
             f"CER {pct(summary['cer'])}  ({summary['char_errors']} / {summary['ref_chars']} characters)",
             f"{summary['records']} records compared ({summary['ref_key']} vs {summary['hyp_key']}, normalised: "
             f"{summary['normalize']})"]
    if summary["skipped_no_reference"]:
        lines.append(f"{summary['skipped_no_reference']} records without {summary['ref_key']!r} skipped")
    if summary.get("failed_records_not_scored"):
        lines.append(f"{summary['failed_records_not_scored']} records failed in the run (failures.jsonl): not scored")
    if summary["missing_hypothesis"]:
        lines.append(f"{summary['missing_hypothesis']} records without {summary['hyp_key']!r} counted as empty")
    return "\n".join(lines)
