"""`amela doctor` reports each problem with its fix, and exits non-zero when there is one."""
import os
import subprocess
import sys


def doctor(env_extra):
    env = {**os.environ, **env_extra}
    return subprocess.run([sys.executable, "-m", "amela", "doctor"], capture_output=True, text=True, env=env)


def test_a_broken_dependency_is_reported_with_its_fix(tmp_path):
    proc = doctor({"AMELA_TEN_VAD_LIB": str(tmp_path / "missing.so")})
    assert proc.returncode == 1
    line = next(line for line in proc.stdout.splitlines() if "TEN-VAD" in line)
    assert line.startswith("FIX") and "missing.so" in line
    assert any(line.startswith("ok") and "torch" in line for line in proc.stdout.splitlines())
    assert "problem(s)" in proc.stdout
