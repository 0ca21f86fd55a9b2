"""The readable batch scripts in slurm/, used by hand as in the original AMELA: no `amela run` beforehand."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from .helpers import ROOT, amela, job_env, make_audio_corpus, read_lines, run_printed

SCRIPTS = ROOT / "slurm"
VENV = os.path.dirname(os.path.dirname(sys.executable))


@pytest.mark.parametrize("args,message", [
    ([], "usage: sbatch --array=0-N slurm/vad.slurm"),
    (["relative/m.jsonl", "/tmp/run"], "INPUT must be an absolute path"),
    (["/nonexistent/m.jsonl", "/tmp/run"], "/nonexistent/m.jsonl: no such manifest or directory"),
])
def test_inputs_are_checked_before_anything_runs(tmp_path, args, message):
    env = {"PATH": os.environ["PATH"], "SLURM_ARRAY_TASK_ID": "0", "SLURM_ARRAY_JOB_ID": "1", "SLURM_JOB_ID": "1"}
    for stage in ("vad", "asr", "s2s"):
        proc = subprocess.run(["bash", str(SCRIPTS / f"{stage}.slurm"), *args], capture_output=True, text=True,
                              env=env, cwd=tmp_path, timeout=30)
        assert proc.returncode == 2, proc.stderr
        assert message.replace("vad", stage) in proc.stderr
    assert not any(tmp_path.iterdir())  # nothing was created


def test_run_dir_must_be_writable(tmp_path):
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("")
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    env = {"PATH": os.environ["PATH"], "SLURM_ARRAY_TASK_ID": "0"}
    proc = subprocess.run(["bash", str(SCRIPTS / "vad.slurm"), str(manifest), str(blocker / "run")],
                          capture_output=True, text=True, env=env, timeout=30)
    assert proc.returncode == 2 and f"{blocker / 'run'}: cannot create or write to it" in proc.stderr


@pytest.mark.slurm
def test_hand_submitted_array_rerun_of_one_task_and_merge(slurm_cluster, tmp_path):
    corpus = make_audio_corpus(tmp_path / "corpus.jsonl")
    local = tmp_path / "local"
    amela(slurm_cluster, "run", "vad", corpus, "-o", local, "--segments")
    run = tmp_path / "run"
    env = job_env(slurm_cluster, AMELA_VENV=VENV)

    def sbatch(*args):
        proc = subprocess.run(["sbatch", "--parsable", *map(str, args)], capture_output=True, text=True, env=env,
                              cwd=tmp_path, timeout=30)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.strip()

    # The scripts ask for 4 CPUs and 8G; this node is smaller: override on the command line, as users do.
    small = ("--cpus-per-task=1", "--mem=1G")
    job = sbatch("--array=0-3%2", *small, SCRIPTS / "vad.slurm", corpus, run, "--segments")
    merge = sbatch(f"--dependency=afterok:{job}", SCRIPTS / "merge.slurm", run)
    assert slurm_cluster.wait_for_job(merge, timeout_s=120) == {merge: "COMPLETED"}, (run / "logs").iterdir()
    assert json.loads((run / "plan.json").read_text())["num_shards"] == 4  # from the array's size
    for name in ("vad.jsonl", "vad_segments.jsonl"):
        assert read_lines(run / name) == read_lines(local / name), name
    assert "shard 3 on" in (run / "logs" / f"vad_{job}_3.out").read_text()
    assert not list(tmp_path.glob("slurm-*.out"))  # SLURM's own (empty) output files were removed

    # Lose shard 2's work: status sees a task that ended without finishing its shard, and says how to rerun it.
    shard = run / "shards" / "00002"
    for path in [shard / "DONE", *shard.glob("*.partial")]:
        path.unlink()
    status = amela(slurm_cluster, "status", run, check=1).stdout
    assert f"shard 2: failed: SLURM task {job}_2: COMPLETED" in status, status
    command = next(line.strip() for line in status.splitlines() if line.strip().startswith("sbatch --array=2 "))
    assert command == f"sbatch --array=2 {SCRIPTS / 'vad.slurm'} {corpus} {run} --segments"
    # The rerun (SLURM_ARRAY_TASK_MAX is 2 now) keeps the recorded split of 4 shards.
    rerun = run_printed(slurm_cluster, f"AMELA_VENV={VENV} " + command.replace("sbatch ", f"sbatch {' '.join(small)} ", 1))
    assert set(slurm_cluster.wait_for_job(rerun, timeout_s=90).values()) == {"COMPLETED"}
    assert json.loads((run / "plan.json").read_text())["num_shards"] == 4
    log = (run / "logs" / f"vad_{rerun}_2.out").read_text()
    assert "already split into 4 shard(s)" in log and re.search(r"shard 2 done: \d+ ok", log), log
    amela(slurm_cluster, "merge", run)
    for name in ("vad.jsonl", "vad_segments.jsonl"):
        assert read_lines(run / name) == read_lines(local / name), name
