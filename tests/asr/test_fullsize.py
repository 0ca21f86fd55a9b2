"""Full-size ASR models (random weights, exact published architectures) through the stage on CPU, loaded by name
from offline caches laid out as huggingface_hub and NeMo lay them out. Slow: building + loading 0.6B parameters."""
from __future__ import annotations

import os

import numpy as np
import pytest

from amela.asr import models
from amela.asr.config import AsrConfig
from amela.asr.stage import AsrStage
from tests.support.fullsize import built, hub_cache

from .conftest import noise, write_wav

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def fullsize(tmp_path_factory):
    yield from built(tmp_path_factory, "parakeet", "ctc-large")


def _check_words(record: dict) -> None:
    words = record["words"]
    assert words, record
    starts = [w["start"] for w in words]
    assert starts == sorted(starts)
    assert all(0.0 <= w["start"] <= w["end"] <= record["duration"] + 0.1 for w in words), words


def test_parakeet_by_name_offline_with_timestamps_and_long_audio(fullsize, tmp_path, monkeypatch, capsys):
    from amela.cli import main

    hub_cache(tmp_path / "cache" / "hf", "nvidia/parakeet-tdt-0.6b-v2", fullsize["parakeet"])
    monkeypatch.setenv(models.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["fetch-models", "asr", "nvidia/parakeet-tdt-0.6b-v2", "--check"]) == 0
    assert "cached   nvidia/parakeet-tdt-0.6b-v2" in capsys.readouterr().out

    records = [{"audio_filepath": write_wav(tmp_path / f"{i}.wav", noise(s, 40 + i)), "duration": s}
               for i, s in enumerate((4.0, 2.5, 26.0))]
    stage = AsrStage(AsrConfig(model="nvidia/parakeet-tdt-0.6b-v2", device="cpu", timestamps=True, max_s=10))
    stage.setup()
    model = stage.backend.model
    # The architecture the builder promises: FastConformer-XL + TDT over 1,024 tokens.
    assert type(model).__name__ == "EncDecRNNTBPEModel"
    assert len(model.encoder.layers) == 24 and model.encoder.d_model == 1024
    assert model.tokenizer.vocab_size == 1024 and list(model.cfg.decoding.durations) == [0, 1, 2, 3, 4]
    assert 6.0e8 < sum(p.numel() for p in model.parameters()) < 6.4e8
    out = [None] * len(records)
    for positions in stage.batches(records):
        for pos, result in zip(positions, stage.process([records[p] for p in positions])):
            out[pos] = result
    assert all(isinstance(r, dict) for r in out), out
    for r in out:
        _check_words(r)
    long = out[2]
    assert long["asr_pieces"] >= 3  # 26 s cut into pieces of <= 10 s
    assert max(w["start"] for w in long["words"]) > 16.0  # words of the last piece, shifted back to record time
    # The short records as NeMo itself transcribes each file alone.
    alone = model.transcribe([records[0]["audio_filepath"]], batch_size=1, verbose=False)[0].text
    assert out[0]["text"] == alone
    assert stage.stats()["records_chunked"] == 1


def test_ctc_large_by_ngc_name_from_nemos_cache(fullsize, tmp_path, monkeypatch):
    monkeypatch.setenv(models.CACHE_ENV, str(tmp_path / "cache"))
    with pytest.raises(Exception, match=r"looked in .*cache/nemo/stt_en_fastconformer_ctc_large/.*amela "
                       r"fetch-models asr stt_en_fastconformer_ctc_large"):
        models.resolve("stt_en_fastconformer_ctc_large")
    where = models.ngc_cache_file("stt_en_fastconformer_ctc_large")
    os.makedirs(os.path.dirname(where))
    os.symlink(fullsize["ctc-large"], where)
    stage = AsrStage(AsrConfig(model="stt_en_fastconformer_ctc_large", device="cpu", timestamps=True))
    stage.setup()
    model = stage.backend.model
    assert type(model).__name__ == "EncDecCTCModelBPE"
    assert len(model.encoder.layers) == 18 and model.encoder.d_model == 512 and model.tokenizer.vocab_size == 1024
    record = {"audio_filepath": write_wav(tmp_path / "a.wav", noise(5.0, 9)), "duration": 5.0}
    [out] = stage.process([record])
    assert isinstance(out, dict), out
    _check_words(out)
    assert np.isclose(sum(p.numel() for p in model.parameters()), 115.6e6, rtol=0.01)
