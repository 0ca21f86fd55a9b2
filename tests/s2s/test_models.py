"""Model registry, cache, verified downloads (from file:// URLs: no network), offline resolution."""
from __future__ import annotations

import hashlib
import re
import subprocess
import sys

import pytest

from amela.s2s import models
from amela.s2s.models import ModelFile, ModelFileError, fetch_models, resolve


def test_registry_names_and_checksums():
    for name in ("hubert-base-ls960", "mhubert-base-vp_en_es_fr", "mhubert-base-25hz",
                 "hubert-base-ls960-kmeans-50", "hubert-base-ls960-kmeans-100", "hubert-base-ls960-kmeans-200",
                 "hubert-base-ls960-kmeans-500", "mhubert-base-vp_en_es_fr-layer-11-kmeans-1000",
                 models.DEFAULT_VOCODER, "hubert-base-ls960-layer-9-kmeans-expresso-2000",
                 "hubert-base-ls960-layer-9-kmeans-expresso-2000-hifigan"):
        assert name in models.REGISTRY
    for f in models.REGISTRY.values():
        assert f.url.startswith("https://")
        assert f.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", f.sha256)
        assert all(c in models.REGISTRY for c in f.companions)
    # every k-means pickle has a published checksum, so none needs --trust-pickle
    assert all(f.sha256 for f in models.REGISTRY.values() if f.kind == "kmeans")


def test_import_creates_no_cache_dir(tmp_path):
    cache = tmp_path / "cache"
    code = "import amela.s2s.models, amela.s2s.stage, amela.s2s.config; import sys; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], env={"AMELA_CACHE": str(cache), "PATH": ""},
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"  # the CLI's --help must not pay for torch
    assert not cache.exists()


def _registry(tmp_path, payload: bytes, sha: str | None = None):
    src = tmp_path / "src" / "dense.pt"
    src.parent.mkdir(parents=True, exist_ok=True)
    src.write_bytes(payload)
    cfg = tmp_path / "src" / "config.json"
    cfg.write_text("{}")
    digest = hashlib.sha256(payload).hexdigest() if sha is None else sha
    return {
        "tiny-dense": ModelFile("tiny-dense", src.as_uri(), "tiny_dense.pt", digest, "dense"),
        "tiny-voc": ModelFile("tiny-voc", src.as_uri(), "tiny_voc.pt", None, "vocoder", ("tiny-voc-config",)),
        "tiny-voc-config": ModelFile("tiny-voc-config", cfg.as_uri(), "tiny_voc.json", None, "vocoder-config"),
    }


def test_fetch_verifies_and_resolve_runs_offline(tmp_path):
    reg = _registry(tmp_path, b"weights" * 100)
    cache = tmp_path / "cache"
    with pytest.raises(ModelFileError, match="amela fetch-models s2s tiny-dense"):
        resolve("tiny-dense", "dense", str(cache), reg)
    assert not cache.exists()
    paths = fetch_models(["tiny-dense", "tiny-voc"], str(cache), reg)
    assert [p.rsplit("/", 1)[1] for p in paths] == ["tiny_dense.pt", "tiny_voc.pt", "tiny_voc.json"]
    got = resolve("tiny-dense", "dense", str(cache), reg)
    assert got.verified and got.path == paths[0]
    assert not resolve("tiny-voc", "vocoder", str(cache), reg).verified  # no published checksum
    assert fetch_models(["tiny-dense"], str(cache), reg) == paths[:1]  # already there: kept


def test_sha256_mismatch_is_a_clear_error(tmp_path):
    reg = _registry(tmp_path, b"weights", sha="0" * 64)
    cache = tmp_path / "cache"
    with pytest.raises(ModelFileError, match="expected 0000"):
        fetch_models(["tiny-dense"], str(cache), reg)
    assert not list((cache / "s2s").glob("*"))  # nothing half-downloaded left behind
    good = _registry(tmp_path, b"weights")
    fetch_models(["tiny-dense"], str(cache), good)
    cached = cache / "s2s" / "tiny_dense.pt"
    cached.write_bytes(b"weightz")  # corrupted in the cache afterwards
    with pytest.raises(ModelFileError, match="sha256 mismatch.*corrupt or truncated"):
        resolve("tiny-dense", "dense", str(cache), good)


def test_unknown_names_and_wrong_kinds(tmp_path):
    with pytest.raises(ModelFileError, match="neither a file nor a known name"):
        resolve("no-such-model", "dense")
    with pytest.raises(ModelFileError, match="is a kmeans file, not a dense model"):
        resolve("hubert-base-ls960-kmeans-50", "dense")
    with pytest.raises(ModelFileError, match="unknown S2S model name"):
        fetch_models(["nope"], str(tmp_path))
    local = tmp_path / "x.pt"
    local.write_bytes(b"x")
    assert resolve(str(local), "dense").path == str(local)
