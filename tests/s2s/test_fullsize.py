"""Full-size S2S models (random weights, published architectures, 2021 file formats) through encode, resynth and
synth on CPU: the shims must load the full-size legacy checkpoint strictly. Slow: ~110M parameters."""
from __future__ import annotations

import pytest
import soundfile as sf
import torch

from amela.config import from_dict
from amela.s2s.config import S2SConfig
from amela.s2s.stage import S2SStage
from amela.stage import FileSink
from tests.support.fullsize import built

from .conftest import _tone

pytestmark = pytest.mark.slow
DURATIONS = (4.0, 2.5)


@pytest.fixture(scope="module")
def fullsize(tmp_path_factory):
    yield from built(tmp_path_factory, "mhubert", "kmeans", "vocoder")


def _stage(fullsize, out_dir, **options):
    base = {"dense": fullsize["mhubert"], "layer": 11, "kmeans": fullsize["kmeans"], "trust_pickle": True,
            "vocoder": fullsize["vocoder"], "vocoder_config": fullsize["vocoder_config"], "device": "cpu"}
    stage = S2SStage(from_dict(S2SConfig, {**base, **options}, "test"), FileSink(str(out_dir)))
    stage.setup()
    return stage


def test_the_checkpoint_is_in_the_2021_format(fullsize):
    from amela.s2s.compat import import_fairseq

    import_fairseq()  # the checkpoint pickles fairseq's Dictionary
    state = torch.load(fullsize["mhubert"], map_location="cpu", weights_only=False)
    model_cfg = state["cfg"]["model"]
    assert isinstance(model_cfg["label_rate"], float) and model_cfg["label_rate"] == 50.0
    assert (model_cfg["encoder_layers"], model_cfg["encoder_embed_dim"]) == (12, 768)
    weights = state["model"]
    assert "encoder.pos_conv.0.weight_g" in weights and "encoder.pos_conv.0.weight_v" in weights
    assert not any("parametrizations" in k for k in weights)
    assert len(state["task_state"]["dictionaries"][0]) == 1000 + 4  # 1,000 units + fairseq's 4 specials
    vocoder = torch.load(fullsize["vocoder"], map_location="cpu", weights_only=True)["generator"]
    assert vocoder["dict.weight"].shape == (1000, 128)


def test_encode_resynth_synth_at_full_size(fullsize, tmp_path):
    audio = []
    for i, d in enumerate(DURATIONS):
        path = tmp_path / "in" / f"u{i}.wav"
        path.parent.mkdir(exist_ok=True)
        sf.write(path, _tone(int(d * 16000), 20 + i), 16000)
        audio.append({"audio_filepath": str(path), "duration": d})
    root = str(tmp_path / "in")

    encoder = _stage(fullsize, tmp_path / "enc", mode="encode", frame_units=True, input_root=root)
    model = encoder.reader.model  # loaded strictly by the shims (load_state_dict(strict=True))
    assert len(model.encoder.layers) == 12 and model.encoder.embedding_dim == 768
    assert 9.0e7 < sum(p.numel() for p in model.parameters()) < 1.0e8
    assert (encoder.quantizer.k, encoder.quantizer.dim) == (1000, 768)
    encoded = encoder.process(audio)
    for record, out in zip(audio, encoded):
        frames = (int(record["duration"] * 16000) - 400) // 320 + 1  # HuBERT: 400-sample field, 320-sample hop
        assert len(out["frame_units"]) == frames
        assert all(0 <= u < 1000 for u in out["frame_units"])
        assert sum(out["unit_durations"]) == frames
    assert len({u for out in encoded for u in out["frame_units"]}) > 5  # features spread over the centroids

    resynth = _stage(fullsize, tmp_path / "resynth", mode="resynth", input_root=root)
    for enc, out in zip(encoded, resynth.process(audio)):
        wav, rate = sf.read(out["audio_filepath"], dtype="float32")
        assert rate == 16000 and len(wav) == len(enc["frame_units"]) * 320
        assert out["units"] == enc["units"] and float(abs(wav).max()) > 0

    synth = _stage(fullsize, tmp_path / "synth", mode="synth", input_root=root)
    assert synth.vocoder.num_units == 1000 and synth.vocoder.has_duration_predictor
    for enc, out in zip(encoded, synth.process([{k: v for k, v in e.items() if k != "frame_units"}
                                                 for e in encoded])):
        assert sf.info(out["audio_filepath"]).frames == sum(enc["unit_durations"]) * 320
