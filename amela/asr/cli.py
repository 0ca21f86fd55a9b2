"""`amela asr-eval`: light to import (the evaluation's libraries load when the command runs)."""
from __future__ import annotations

import argparse


def register(subparsers, stage_name: str | None = None) -> None:
    p = subparsers.add_parser(
        "asr-eval", help="WER/CER of an ASR run (or any manifest) against reference transcripts",
        description="WER and CER per record and over the corpus, after Whisper-style English normalisation. "
                    "Writes <prefix>.jsonl (per record) and <prefix>.json (summary) and prints the summary.")
    p.add_argument("input", metavar="RUN_DIR_OR_MANIFEST", help="a run directory (its asr.jsonl) or a JSONL manifest")
    p.add_argument("--ref-key", default="text", help="key of the reference transcript (default: text)")
    p.add_argument("--hyp-key", default="pred_text", help="key of the hypothesis (default: pred_text)")
    p.add_argument("--normalize", default="whisper", choices=("whisper", "basic", "none"),
                   help="whisper: Whisper's English normaliser; basic: its language-neutral one; none: as written")
    p.add_argument("-o", "--out", default=None, metavar="PREFIX",
                   help="output prefix (default: RUN_DIR/asr_eval, or MANIFEST's name with .eval)")
    p.add_argument("--stage", default="asr", help="for a run directory: which <stage>.jsonl to read (default: asr)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .eval import format_summary, run_eval

    # A ConfigError goes up to the dispatcher (amela/cli.py), which prints it as every command's errors and exits 2.
    summary, per_record, summary_path = run_eval(args.input, args.ref_key, args.hyp_key, args.normalize, args.out,
                                                 args.stage)
    print(format_summary(summary))
    print(f"per record: {per_record}\nsummary:    {summary_path}")
    return 0
