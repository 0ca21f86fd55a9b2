"""Model resolution: .nemo paths, SALM directories, cached names; offline errors that say how to fix them."""
import json

import pytest

from amela.asr import models
from amela.errors import ConfigError, StageUnavailableError


def test_resolve_local_paths(tmp_path, tiny_models):
    assert models.resolve(tiny_models["ctc"]) == ("nemo", tiny_models["ctc"])
    with pytest.raises(ConfigError, match="does not exist"):
        models.resolve(str(tmp_path / "missing.nemo"))
    with pytest.raises(ConfigError, match="neither a .nemo file nor a SALM config.json"):
        models.resolve(str(tmp_path))
    assert models.resolve("stt_en_conformer_ctc_small") == ("ngc", "stt_en_conformer_ctc_small")
    salm = tmp_path / "salm"
    salm.mkdir()
    (salm / "config.json").write_text(json.dumps({"pretrained_llm": "x", "perception": {}}))
    assert models.resolve(str(salm)) == ("salm", str(salm))


def test_an_uncached_pretrained_name_fails_offline_with_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv(models.CACHE_ENV, str(tmp_path / "cache"))
    with pytest.raises(StageUnavailableError, match=r"not in .*cache/hf.*amela fetch-models asr nvidia/x-y"):
        models.resolve("nvidia/x-y")


def test_a_cached_snapshot_is_found_without_network(tmp_path, monkeypatch, tiny_models):
    # Lay out the cache as huggingface_hub does (refs/main -> snapshots/<commit>/...), then resolve offline.
    import shutil

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    repo = tmp_path / "hf" / "models--acme--tiny"
    commit = "0" * 40
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snap = repo / "snapshots" / commit
    snap.mkdir(parents=True)
    shutil.copy(tiny_models["ctc"], snap / "tiny.nemo")
    assert models.resolve("acme/tiny", str(tmp_path)) == ("nemo", str(snap / "tiny.nemo"))


def test_fetch_models_refuses_clearly_when_offline(tmp_path, monkeypatch, tiny_models):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(StageUnavailableError, match="cannot fetch 'nvidia/x-y': HF_HUB_OFFLINE is set"):
        models.fetch_models(["nvidia/x-y"], str(tmp_path))
    assert models.fetch_models([tiny_models["ctc"]], str(tmp_path)) == [tiny_models["ctc"]]  # local: nothing to do


def test_offline_env_points_hub_libraries_at_the_cache(tmp_path):
    env = models.offline_env(str(tmp_path))
    assert env["HF_HUB_OFFLINE"] == "1" and env["HF_HUB_CACHE"] == str(tmp_path / "hf")
    assert env["NEMO_CACHE_DIR"] == str(tmp_path / "nemo")


def test_fetch_models_command_reports_the_offline_error(tmp_path, monkeypatch, capsys):
    from amela.cli import main

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["fetch-models", "asr", "nvidia/x-y", "--cache-dir", str(tmp_path)]) == 2
    assert "cannot fetch 'nvidia/x-y'" in capsys.readouterr().err
