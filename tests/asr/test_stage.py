"""The stage with tiny NeMo models (random weights, built once): every record, in order, as NeMo itself transcribes it."""
import random

import numpy as np
import pytest
import soundfile as sf
import torch

from amela.asr import chunking
from amela.asr.config import AsrConfig
from amela.asr.stage import AsrStage
from amela.audio import read_span
from amela.errors import ItemError

from .conftest import RATE, direct, noise, write_wav


def make_stage(model_path, **options):
    stage = AsrStage(AsrConfig(model=model_path, device="cpu", **options))
    stage.setup()
    return stage


def run_like_the_runner(stage, records):
    """What the runner does: batches() in the main process, process() per batch, results back in input order."""
    results = [None] * len(records)
    for positions in stage.batches(records):
        for pos, outcome in zip(positions, stage.process([records[p] for p in positions])):
            results[pos] = outcome
    return results


@pytest.fixture(scope="module")
def ctc_stage(tiny_models):
    return make_stage(tiny_models["ctc"], batch_s=12.0)


def test_every_record_in_input_order_with_nemos_own_transcript(ctc_stage, ctc_model, corpus):
    records = list(corpus)
    random.Random(1).shuffle(records)
    results = run_like_the_runner(ctc_stage, records)
    want = direct(ctc_model, [read_span(r, RATE) for r in records])
    assert [r["audio_filepath"] for r in results] == [r["audio_filepath"] for r in records]
    assert [r["text"] for r in results] == want
    assert all(res["speaker"] == rec["speaker"] and res["duration"] == rec["duration"]
               for res, rec in zip(results, records))  # input fields kept
    assert all("text" not in r for r in records)  # inputs not mutated
    assert len(set(want)) == len(want)  # the check above could tell records apart


def test_missing_and_empty_files_fail_alone(ctc_stage, ctc_model, corpus, tmp_path):
    empty = tmp_path / "empty.wav"
    sf.write(str(empty), np.zeros(0, dtype=np.float32), RATE)
    bad = [{"audio_filepath": str(tmp_path / "missing.wav"), "duration": 2.0},
           {"audio_filepath": str(empty), "duration": 1.0}]
    records = corpus[:3] + bad[:1] + corpus[3:6] + bad[1:]
    outcomes = ctc_stage.process(records)
    assert len(outcomes) == len(records)
    errors = {i: o for i, o in enumerate(outcomes) if isinstance(o, Exception)}
    assert sorted(errors) == [3, 7]
    assert "missing.wav: file not found" in str(errors[3]) and "empty.wav" in str(errors[7])
    good = [r for i, r in enumerate(records) if i not in errors]
    assert [o["text"] for i, o in enumerate(outcomes) if i not in errors] == direct(
        ctc_model, [read_span(r, RATE) for r in good])


def test_long_record_is_cut_at_vad_split_points_and_reassembled(tiny_models, ctc_model, tmp_path):
    path = write_wav(tmp_path / "long.wav", noise(100.0, 11))
    x, _ = sf.read(path, dtype="float32")  # as stored (16-bit PCM)
    points = [25.0, 52.5, 80.0]
    stage = make_stage(tiny_models["ctc"], max_s=30.0, batch_s=60.0)
    [out] = stage.process([{"audio_filepath": path, "duration": 100.0, "split_points": points}])
    bounds = [0] + [int(p * RATE) for p in points] + [len(x)]
    pieces = [x[a:b] for a, b in zip(bounds, bounds[1:])]
    assert out["asr_pieces"] == 4
    assert out["text"] == " ".join(direct(ctc_model, pieces))
    stats = stage.stats()
    assert stats["records_chunked"] == 1 and stats["audio_s"] == 100.0
    assert stats["decode_s"] > 0 and stats["cpu_s"] > 0  # named as VAD and quality name them


def test_long_record_without_vad_is_cut_in_its_silences(tiny_models, ctc_model, tmp_path):
    path = write_wav(tmp_path / "long.wav", noise(70.0, 12, gaps=[(33.0, 33.5)]))
    x, _ = sf.read(path, dtype="float32")
    stage = make_stage(tiny_models["ctc"], max_s=40.0, cut_search_s=10.0, timestamps=True, scores=True)
    [out] = stage.process([{"audio_filepath": path, "duration": 70.0}])
    # Where the cutter puts the cut is tested in test_chunking; here: the stage cuts there and reassembles.
    [(_, cut), _] = chunking.plan_pieces(x, RATE, 40.0, 10.0)
    assert 33.0 * RATE <= cut <= 33.5 * RATE
    assert out["asr_pieces"] == 2
    assert out["text"] == " ".join(direct(ctc_model, [x[:cut], x[cut:]]))
    words = out["words"]
    assert words and all(w["start"] <= w["end"] for w in words)
    assert any(w["start"] >= 33.0 for w in words)  # second piece's times are shifted to the record's clock
    assert isinstance(out["score"], float)


class OomBackend:
    """Wraps the real backend; fails like CUDA does when a call gets more than `limit_s` of audio."""

    def __init__(self, inner, limit_s):
        self.inner, self.limit_s, self.calls = inner, limit_s, []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def transcribe(self, arrays):
        seconds = sum(max(len(a) / RATE, 1.0) for a in arrays)
        self.calls.append((seconds, len(arrays), seconds > self.limit_s))
        if seconds > self.limit_s:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return self.inner.transcribe(arrays)


def test_out_of_memory_halves_the_batch_and_keeps_the_budget_that_worked(tiny_models, ctc_model, corpus):
    stage = make_stage(tiny_models["ctc"], batch_s=60.0)
    stage.backend = OomBackend(stage.backend, limit_s=10.0)
    records = list(corpus)
    results = run_like_the_runner(stage, records)
    assert [r["text"] for r in results] == direct(ctc_model, [read_span(r, RATE) for r in records])
    stats = stage.stats()
    assert stats["oom_halvings"] >= 1
    assert stats["batch_s_budget_min"] <= 30.0  # halved at least once from 60
    calls = stage.backend.calls
    failed = [i for i, (_, _, oom) in enumerate(calls) if oom]
    assert stats["oom_halvings"] == len(failed) <= 4  # 60 -> 30 -> 15 -> 7.5: the budget is learned, not retried
    # Every call after the last out-of-memory error fits the budget that worked (or is one item alone).
    assert all(s <= stats["batch_s_budget_min"] or n == 1 for s, n, _ in calls[failed[-1] + 1:])
    assert len(calls) > len(failed) + 3


def test_a_piece_that_breaks_the_model_fails_alone(tiny_models, ctc_model, corpus):
    stage = make_stage(tiny_models["ctc"], batch_s=100.0)
    target = len(read_span(corpus[2], RATE))

    class Picky:
        sample_rate, dtype = RATE, "float32"

        def transcribe(self, arrays):
            if any(len(a) == target for a in arrays):
                raise ValueError("model cannot take this one")
            return real.transcribe(arrays)

        def free_memory(self):
            pass

    real, stage.backend = stage.backend, Picky()
    outcomes = stage.process(corpus[:6])
    bad = [i for i, o in enumerate(outcomes) if isinstance(o, ItemError)]
    same_length = [i for i, r in enumerate(corpus[:6]) if len(read_span(r, RATE)) == target]
    assert bad == same_length and "model cannot take this one" in str(outcomes[bad[0]])
    assert all(isinstance(o, dict) for i, o in enumerate(outcomes) if i not in bad)


@pytest.mark.parametrize("kind", ["rnnt", "conformer_ctc"])
def test_other_architectures_through_the_stage(tiny_models, corpus, kind):
    from nemo.collections.asr.models import ASRModel

    model = ASRModel.restore_from(tiny_models[kind], map_location="cpu").eval()
    stage = make_stage(tiny_models[kind], batch_s=15.0, text_key="pred_text")
    records = [r for r in corpus if r["duration"] <= 3.5][:5]  # random RNNT decoders are slow on CPU
    results = run_like_the_runner(stage, records)
    assert [r["pred_text"] for r in results] == direct(model, [read_span(r, RATE) for r in records])


def test_a_model_kind_that_does_not_match_the_checkpoint_is_refused(tiny_models):
    from amela.errors import ConfigError

    with pytest.raises(ConfigError, match="--model-kind salm, but .*tiny_ctc.nemo is an ASR model"):
        make_stage(tiny_models["ctc"], model_kind="salm")


def test_output_duration_is_the_decoded_audio_not_the_manifests(ctc_stage, corpus):
    """A manifest that claims more than the file holds: the output (and so the run's hours) says what was decoded."""
    record = corpus[0]
    claimed, exact = {**record, "duration": record["duration"] + 60.0}, dict(record)
    out_claimed, out_exact = run_like_the_runner(ctc_stage, [claimed, exact])
    assert out_claimed["duration"] == pytest.approx(record["duration"], abs=1e-3)
    assert out_exact["duration"] == record["duration"]  # an accurate manifest value is kept as written
