"""The quality stage's doctor checks: ok here (real package), and a missing model file named with its fix."""
from __future__ import annotations

import shutil

from amela.quality import dnsmos, doctor


def test_all_checks_pass_with_the_installed_package():
    results = doctor.checks()
    assert [ok for _, ok, _ in results] == [True, True, True], results
    assert "model_v8.onnx" in results[2][2]


def test_a_missing_model_file_is_named_with_the_fix(tmp_path, monkeypatch):
    copy = tmp_path / "speechmos"
    shutil.copytree(dnsmos.model_dir(), copy, ignore=shutil.ignore_patterns("*.py", "__pycache__", "aecmos*", "plcmos*"))
    (copy / "pdnsmos_models" / "sig_bak_ovr.onnx").unlink()
    monkeypatch.setattr(dnsmos, "model_dir", lambda: str(copy))
    what, ok, detail = doctor.checks()[2]
    assert not ok and "pdnsmos_models/sig_bak_ovr.onnx" in detail and "pip install --force-reinstall" in detail
