"""WER/CER against hand-computed values, Whisper-style normalisation, and the asr-eval command's files."""
import argparse
import json

import pytest

from amela.asr import cli as asr_cli
from amela.asr.eval import char_counts, evaluate, run_eval, word_counts
from amela.errors import ConfigError


def test_word_and_char_errors_match_hand_counts():
    # "the cat sat on the mat" -> "the cat sat on mat": one deletion of 6 words; 4 of 22 characters ("the ").
    w = word_counts("the cat sat on the mat", "the cat sat on mat")
    assert (w.ref, w.sub, w.dele, w.ins) == (6, 0, 1, 0)
    assert w.rate() == pytest.approx(1 / 6)
    assert char_counts("the cat sat on the mat", "the cat sat on mat").rate() == pytest.approx(4 / 22)
    # one substitution and one insertion over 3 words
    w = word_counts("a b c", "a x c d")
    assert (w.sub, w.dele, w.ins, w.errors, w.ref) == (1, 0, 1, 2, 3)


def test_empty_reference_counts_insertions_without_a_rate():
    w = word_counts("", "two words")
    assert (w.ref, w.ins) == (0, 2) and w.rate() is None


def test_corpus_rates_are_micro_averaged_after_normalisation():
    records = [
        {"text": "Hello, World!", "pred_text": "hello world"},  # 0 errors once normalised
        {"text": "Mr. Smith isn't here.", "pred_text": "mister smith is not there"},  # 1 sub of 5 words
        {"text": "red green blue black", "pred_text": "red green"},  # 2 deletions of 4
        {"pred_text": "no reference"},  # skipped
        {"text": "colour", "pred_text": None},  # missing hypothesis: counted as empty, 1 deletion
    ]
    rows, summary = evaluate(records, "text", "pred_text")
    assert [r["wer"] for r in rows] == [0.0, 0.2, 0.5, 1.0]
    assert rows[1]["ref_norm"] == "mister smith is not here"
    assert rows[3]["ref_norm"] == "color"  # British spelling mapped, as Whisper's normaliser does
    assert summary["ref_words"] == 2 + 5 + 4 + 1 and summary["word_errors"] == 0 + 1 + 2 + 1
    assert summary["wer"] == pytest.approx(4 / 12)
    assert (summary["records"], summary["skipped_no_reference"], summary["missing_hypothesis"]) == (4, 1, 1)


def test_without_normalisation_case_and_punctuation_count():
    rows, summary = evaluate([{"r": "Hello, World!", "h": "hello world"}], "r", "h", normalize="none")
    assert summary["wer"] == 1.0


def _args(**kw):
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    asr_cli.register(sub)
    argv = ["asr-eval", kw.pop("input")] + [x for k, v in kw.items() for x in (f"--{k.replace('_', '-')}", v)]
    return parser.parse_args(argv)


def test_asr_eval_on_a_run_directory_writes_both_files_and_prints(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    rows = [{"audio_filepath": "/a.wav", "duration": 1.0, "ref": "a b c d", "text": "a b x d"},
            {"audio_filepath": "/b.wav", "duration": 1.0, "ref": "e f", "text": "e f"}]
    (run / "asr.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (run / "failures.jsonl").write_text(json.dumps({"index": 2, "message": "x"}) + "\n")
    args = _args(input=str(run), ref_key="ref", hyp_key="text")
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "WER 16.67%" in out and "1 records failed in the run" in out
    summary = json.loads((run / "asr_eval.json").read_text())
    assert summary["wer"] == pytest.approx(1 / 6, abs=1e-6) and summary["failed_records_not_scored"] == 1
    per_record = [json.loads(line) for line in (run / "asr_eval.jsonl").read_text().splitlines()]
    assert [r["wer"] for r in per_record] == [0.25, 0.0] and per_record[0]["audio_filepath"] == "/a.wav"


def test_asr_eval_on_a_manifest_and_its_errors(tmp_path, capsys):
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"text": "yes", "pred_text": "no"}) + "\n")
    summary, per_record, summary_path = run_eval(str(manifest), "text", "pred_text")
    assert summary["wer"] == 1.0 and summary_path == tmp_path / "m.eval.json" and per_record.exists()
    with pytest.raises(ConfigError, match="no record .* has a string 'ref'"):
        run_eval(str(manifest), "ref", "pred_text")
    import amela.cli

    assert amela.cli.main(["asr-eval", str(tmp_path / "nope")]) == 2  # the dispatcher prints the error
    assert "neither a run directory nor a manifest" in capsys.readouterr().err


def test_asr_eval_through_the_amela_command(tmp_path, monkeypatch, capsys):
    import amela.cli

    assert "amela.asr.cli" in amela.cli.EXTRA_COMMANDS
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"text": "a b c d", "pred_text": "a b c"}) + "\n")
    assert amela.cli.main(["asr-eval", str(manifest)]) == 0
    assert "WER 25.00%" in capsys.readouterr().out
    assert json.loads((tmp_path / "m.eval.json").read_text())["deletions"] == 1
