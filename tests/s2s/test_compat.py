"""The five compatibility shims: each one is needed (the failure reproduces) and each one works."""
from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest
import torch

from .conftest import LAYER, read, writer_features


def test_plain_import_fails_and_shimmed_import_works():
    plain = subprocess.run([sys.executable, "-c", "import fairseq"], capture_output=True, text=True)
    assert plain.returncode != 0
    assert "mutable default" in plain.stderr and "is not allowed: use default_factory" in plain.stderr
    shimmed = subprocess.run(
        [sys.executable, "-c", "from amela.s2s.compat import import_fairseq as f; f(); f(); "
         "from fairseq.dataclass.configs import FairseqConfig; print(FairseqConfig().common.seed)"],
        capture_output=True, text=True)
    assert shimmed.returncode == 0, shimmed.stderr
    assert shimmed.stdout.split()[-1] == "1"


def test_import_shim_leaves_other_packages_alone():
    from amela.s2s.compat import import_fairseq

    import_fairseq()

    @dataclasses.dataclass
    class Inner:
        x: int = 1

    with pytest.raises(ValueError, match="mutable default"):
        @dataclasses.dataclass
        class Outer:  # noqa: F841 - defining it is the test
            inner: Inner = Inner()


def test_plain_torch_load_refuses_the_checkpoint(tiny):
    with pytest.raises(Exception, match="fairseq.data.dictionary.Dictionary"):
        torch.load(tiny.hubert)


def test_allowlist_is_scoped_to_the_load(tiny):
    from amela.s2s.hubert import read_checkpoint

    state = read_checkpoint(tiny.hubert)
    assert type(state["task_state"]["dictionaries"][0]).__name__ == "Dictionary"
    assert not any("Dictionary" in str(g) for g in torch.serialization.get_safe_globals())
    with pytest.raises(Exception, match="Dictionary"):
        torch.load(tiny.hubert)  # still refused outside the scoped block


def test_checkpoint_has_the_2021_layout(tiny):
    from amela.s2s.compat import fairseq_safe_globals

    with fairseq_safe_globals():
        raw = torch.load(tiny.hubert, map_location="cpu")
    assert isinstance(raw["cfg"], dict)
    assert raw["cfg"]["model"]["label_rate"] == 50.0 and isinstance(raw["cfg"]["model"]["label_rate"], float)
    assert isinstance(raw["cfg"]["model"]["encoder_layers"], float)
    assert "encoder.pos_conv.0.weight_g" in raw["model"] and "encoder.pos_conv.0.weight_v" in raw["model"]


def test_shimmed_load_is_strict_and_features_equal_the_writers(tiny):
    from amela.s2s.hubert import HubertReader

    reader = HubertReader.from_checkpoint(tiny.hubert, LAYER)
    written, loaded = tiny.writer.state_dict(), reader.model.state_dict()
    assert sorted(written) == sorted(loaded)
    assert all(torch.equal(written[k], loaded[k]) for k in written)
    waves = [read(r["audio_filepath"]) for r in tiny.records]
    for wave, got in zip(waves, reader.features(waves)):  # batched, padded
        ref = writer_features(tiny.writer, wave)
        assert got.shape == ref.shape
        torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-5)


def test_int_fields_written_as_floats(tiny):
    from omegaconf import OmegaConf
    from omegaconf.errors import ValidationError

    from amela.s2s.compat import coerce_declared_ints, import_fairseq

    import_fairseq()
    from fairseq.models.hubert.hubert import HubertConfig

    with pytest.raises(ValidationError, match="could not be converted to Integer"):
        OmegaConf.merge(OmegaConf.structured(HubertConfig), {"encoder_layers": 2.0})
    cfg = {"model": {"_name": "hubert", "encoder_layers": 2.0, "label_rate": 50.0, "dropout": 0.1,
                     "conv_pos": 16.5},
           "task": {"_name": "hubert_pretraining", "sample_rate": 16000.0, "label_rate": 50.0},
           "common": {"seed": 3.0, "fp16": False}}
    changed = coerce_declared_ints(cfg)
    assert sorted(changed) == ["common.seed", "model.encoder_layers", "task.sample_rate"]
    assert type(cfg["model"]["encoder_layers"]) is int and type(cfg["common"]["seed"]) is int
    # label_rate is declared float by this fairseq: it stays 50.0; a non-integral float is left for fairseq to reject
    assert type(cfg["model"]["label_rate"]) is float and cfg["model"]["conv_pos"] == 16.5
    OmegaConf.merge(OmegaConf.structured(HubertConfig), {k: v for k, v in cfg["model"].items() if k != "conv_pos"})


def test_old_weight_norm_keys_load_strictly_into_parametrized_pos_conv(tiny):
    """A model whose pos_conv uses torch's parametrized weight norm (what newer fairseq builds) gets the 2021 keys
    renamed, loads strictly, and gives the writer's features; dropping the keys (the original's fix) does not."""
    from amela.s2s.compat import fairseq_safe_globals, remap_weight_norm_keys
    from amela.s2s.hubert import HubertReader, load_hubert

    with fairseq_safe_globals():
        old = torch.load(tiny.hubert, map_location="cpu")["model"]

    def parametrized_model():
        model, task_cfg = load_hubert(tiny.hubert)
        conv = model.encoder.pos_conv[0]
        torch.nn.utils.remove_weight_norm(conv)
        torch.nn.utils.parametrizations.weight_norm(conv, name="weight", dim=2)
        return model, task_cfg

    model, task_cfg = parametrized_model()
    assert "encoder.pos_conv.0.parametrizations.weight.original0" in model.state_dict()
    weights, renamed = remap_weight_norm_keys(old, model.state_dict().keys())
    assert sorted(renamed) == ["encoder.pos_conv.0.weight_g", "encoder.pos_conv.0.weight_v"]
    model.load_state_dict(weights, strict=True)
    wave = read(tiny.records[2]["audio_filepath"])
    ref = writer_features(tiny.writer, wave)
    got = HubertReader(model, task_cfg, LAYER).features([wave])[0]
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-5)

    dropped, _ = parametrized_model()
    with torch.no_grad():
        for p in dropped.encoder.pos_conv.parameters():
            p.copy_(torch.randn_like(p))  # what a fresh initialisation leaves there
    dropped.load_state_dict({k: v for k, v in old.items() if "pos_conv.0.weight_" not in k}, strict=False)
    off = HubertReader(dropped, task_cfg, LAYER).features([wave])[0]
    assert (off - ref).abs().max() > 1e-2


def test_corrupt_checkpoint_names_the_file(tiny, tmp_path):
    from amela.s2s.hubert import HubertReader
    from amela.s2s.models import ModelFileError

    data = open(tiny.hubert, "rb").read()
    bad = tmp_path / "truncated.pt"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match="truncated.pt"):
        HubertReader.from_checkpoint(str(bad), LAYER)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint at all")
    with pytest.raises(ModelFileError, match="junk.pt.*corrupt or truncated"):
        HubertReader.from_checkpoint(str(junk), LAYER)


def test_layer_out_of_range(tiny):
    from amela.s2s.hubert import HubertReader
    from amela.s2s.models import ModelFileError

    with pytest.raises(ModelFileError, match="layers 1..2"):
        HubertReader.from_checkpoint(tiny.hubert, 3)
