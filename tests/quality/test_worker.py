"""Worker set-up: onnxruntime sized to the worker's share of cores, built in setup(), never at import."""
from __future__ import annotations

import subprocess
import sys

from amela.quality.config import QualityConfig
from amela.quality.stage import QualityStage


def test_sessions_use_the_workers_share_of_the_cores(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")  # what the runner sets in a worker before setup()
    stage = QualityStage(QualityConfig())
    assert stage.dnsmos is None  # nothing built before setup()
    stage.setup()
    for session in (stage.dnsmos.p835, stage.dnsmos.p808):
        opts = session.get_session_options()
        assert (opts.intra_op_num_threads, opts.inter_op_num_threads) == (3, 1)


def test_importing_the_stage_loads_no_onnxruntime_nor_librosa():
    """The CLI and the runner import the stage in the parent process: no session (or its threads) exists there to be
    inherited by a fork, and --help stays fast."""
    code = ("import sys, amela.quality.stage, amela.cli; amela.cli.build_parser('quality'); "
            "print(sorted(m for m in ('onnxruntime', 'librosa', 'speechmos') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_handwritten_slurm_script_checks_its_inputs(tmp_path):
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "slurm" / "quality.slurm"
    env = {"PATH": "/usr/bin:/bin", "SLURM_ARRAY_TASK_ID": "0", "SLURM_ARRAY_JOB_ID": "1", "SLURM_JOB_ID": "1"}
    for args, message in (([], "usage: sbatch --array=0-N slurm/quality.slurm"),
                          (["/nonexistent/m.jsonl", "/tmp/run"], "/nonexistent/m.jsonl: no such manifest")):
        proc = subprocess.run(["bash", str(script), *args], capture_output=True, text=True, env=env, cwd=tmp_path,
                              timeout=30)
        assert proc.returncode == 2 and message in proc.stderr
    assert "STAGE=quality" in script.read_text()
