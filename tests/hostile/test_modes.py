"""Point 8: every file a run writes gets the mode the umask gives (0666 & ~umask), like any other tool's files."""
import os
import stat
import subprocess
import sys

import pytest

from amela.manifest import write_bytes_atomic, write_jsonl_atomic
from tests.support.helpers import STAGE, make_manifest


@pytest.mark.parametrize("umask", [0o002, 0o027])
def test_atomic_writes_follow_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        write_bytes_atomic(tmp_path / "a.bin", b"x")
        write_jsonl_atomic(tmp_path / "b.jsonl", [{"a": 1}])
    finally:
        os.umask(old)
    for name in ("a.bin", "b.jsonl"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o666 & ~umask
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # no temporary left behind


def test_a_whole_run_is_readable_by_the_group(tmp_path):
    manifest = make_manifest(tmp_path / "m.jsonl", 6)
    run = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "amela", "run", STAGE, str(manifest), "-o", str(run), "--shards", "2",
                           "--workers", "0", "--write-files", "--fail-on", "a1.wav"],
                          capture_output=True, text=True, preexec_fn=lambda: os.umask(0o002))
    assert proc.returncode == 1, proc.stderr
    files = [p for p in run.rglob("*") if p.is_file() and not p.name.startswith(".")]
    names = {p.name for p in files}
    assert {"echo.jsonl", "failures.jsonl", "stats.json", "config.yaml", "plan.json", "DONE", "output.partial",
            "input.jsonl", "echo_report.txt", "a0.wav.txt"} <= names
    wrong = {str(p.relative_to(run)): oct(stat.S_IMODE(p.stat().st_mode)) for p in files
             if stat.S_IMODE(p.stat().st_mode) != 0o664}
    assert wrong == {}
