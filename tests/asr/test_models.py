"""Model resolution: .nemo paths, SALM directories, cached names; offline errors that say how to fix them."""
import json
import os
import shutil

import pytest

from amela.asr import models
from amela.errors import ConfigError, StageUnavailableError


def test_resolve_local_paths(tmp_path, tiny_models):
    assert models.resolve(tiny_models["ctc"]) == ("nemo", tiny_models["ctc"])
    with pytest.raises(ConfigError, match="does not exist"):
        models.resolve(str(tmp_path / "missing.nemo"))
    with pytest.raises(ConfigError, match="neither a .nemo file nor a SALM config.json"):
        models.resolve(str(tmp_path))
    salm = tmp_path / "salm"
    salm.mkdir()
    (salm / "config.json").write_text(json.dumps({"pretrained_llm": "x", "perception": {}}))
    assert models.resolve(str(salm)) == ("salm", str(salm))


def test_an_uncached_pretrained_name_fails_offline_with_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv(models.CACHE_ENV, str(tmp_path / "cache"))
    with pytest.raises(StageUnavailableError, match=r"not in .*cache/hf/models--nvidia--x-y.*amela fetch-models asr "
                       r"nvidia/x-y"):
        models.resolve("nvidia/x-y")
    # NGC names: one line naming NeMo's cache folder for that model and the same command.
    with pytest.raises(StageUnavailableError, match=r"looked in .*cache/nemo/stt_en_conformer_ctc_small/[0-9a-f]{32}/"
                       r"stt_en_conformer_ctc_small.nemo.*amela fetch-models asr stt_en_conformer_ctc_small"):
        models.resolve("stt_en_conformer_ctc_small")
    with pytest.raises(ConfigError, match="nor an NGC model NeMo knows"):
        models.resolve("no_such_model")


def test_ngc_names_resolve_from_nemos_own_cache_layout(tmp_path, monkeypatch, tiny_models):
    """The file is put where NeMo's from_pretrained keeps it; AMELA and NeMo itself both find it there, offline."""
    from nemo.collections.asr.models import ASRModel

    monkeypatch.setenv(models.CACHE_ENV, str(tmp_path))
    where = models.ngc_cache_file("stt_en_fastconformer_ctc_large")
    assert where.startswith(str(tmp_path / "nemo" / "stt_en_fastconformer_ctc_large")) and where.endswith(".nemo")
    os.makedirs(os.path.dirname(where))
    shutil.copy(tiny_models["ctc"], where)
    assert models.resolve("stt_en_fastconformer_ctc_large") == ("nemo", where)
    assert str(ASRModel.from_pretrained("stt_en_fastconformer_ctc_large", return_model_file=True)) == where


def test_fetch_models_check_reports_what_is_cached_where(tmp_path, monkeypatch, tiny_models, capsys):
    from amela.cli import main

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    snap = tmp_path / "hf" / "models--acme--tiny" / "snapshots" / ("1" * 40)
    snap.mkdir(parents=True)
    (tmp_path / "hf" / "models--acme--tiny" / "refs").mkdir()
    (tmp_path / "hf" / "models--acme--tiny" / "refs" / "main").write_text("1" * 40)
    shutil.copy(tiny_models["ctc"], snap / "tiny.nemo")
    monkeypatch.setenv(models.CACHE_ENV, str(tmp_path))
    ngc = models.ngc_cache_file("stt_en_fastconformer_ctc_large")
    os.makedirs(os.path.dirname(ngc))
    shutil.copy(tiny_models["ctc"], ngc)
    assert main(["fetch-models", "asr", "--check"]) == 0
    out = capsys.readouterr().out
    assert f"cached   acme/tiny  {snap / 'tiny.nemo'}" in out
    assert f"cached   stt_en_fastconformer_ctc_large  {ngc}" in out
    assert main(["fetch-models", "asr", "acme/tiny", "nvidia/other", "--check"]) == 1
    out = capsys.readouterr().out
    assert "cached   acme/tiny" in out and "missing  nvidia/other" in out
    assert "amela fetch-models asr nvidia/other" in out
    # Fetching what is cached touches no network (HF_HUB_OFFLINE would refuse a download).
    assert models.fetch_models(["acme/tiny", "stt_en_fastconformer_ctc_large"]) == [str(snap / "tiny.nemo"), ngc]


def test_a_cached_snapshot_is_found_without_network(tmp_path, monkeypatch, tiny_models):
    # Lay out the cache as huggingface_hub does (refs/main -> snapshots/<commit>/...), then resolve offline.
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


def test_an_uncached_model_fails_before_any_task_starts(tmp_path, monkeypatch, capsys):
    """On the login node, at prepare time: one line with the folder looked in and the fetch command; no run created."""
    from amela.cli import main

    from .conftest import noise, write_wav

    monkeypatch.setenv(models.CACHE_ENV, str(tmp_path / "cache"))
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"audio_filepath": write_wav(tmp_path / "a.wav", noise(1.0, 1)), "duration": 1.0}))
    assert main(["run", "asr", str(manifest), "-o", str(tmp_path / "run"), "--model", "nvidia/not-fetched",
                 "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "models--nvidia--not-fetched" in err[0]
    assert "amela fetch-models asr nvidia/not-fetched" in err[0]
    assert not (tmp_path / "run" / "asr.jsonl").exists()
