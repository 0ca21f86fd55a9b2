"""Issue 9, point 13 (and the SLURM side of point 2): rough edges a hostile trial found, on the real cluster."""
from __future__ import annotations

import json
import re
import subprocess

from .helpers import (
    ECHO,
    ROOT,
    amela,
    job_env,
    make_echo_corpus,
    read_lines,
    run_printed,
    submitted,
    wait_for_lines,
    wait_until,
)


def test_all_shards_done_but_not_merged_submits_only_the_merge_job(slurm_cluster, tmp_path):
    corpus = make_echo_corpus(tmp_path / "m.jsonl", 6)
    run = tmp_path / "run"
    amela(slurm_cluster, "prepare", ECHO, corpus, "-o", run, "--shards", 2)
    for i in (0, 1):
        amela(slurm_cluster, "run-shard", run, i, "--workers", 0)
    out = amela(slurm_cluster, "run", ECHO, corpus, "-o", run, "--shards", 2, "--backend", "sbatch").stdout
    arrays, merge = submitted(out)
    assert arrays == [] and merge, out
    assert slurm_cluster.wait_for_job(merge, timeout_s=120) == {merge: "COMPLETED"}
    assert len(read_lines(run / "echo.jsonl")) == 6


def test_status_knows_a_resubmission_made_by_hand_and_never_invites_another(slurm_cluster, tmp_path):
    corpus = make_echo_corpus(tmp_path / "m.jsonl", 4)
    run = tmp_path / "run"
    out = amela(slurm_cluster, "run", ECHO, corpus, "-o", run, "--shards", 2, "--workers", 0, "--backend", "sbatch",
                "--no-merge-job", "--sbatch-arg=--hold").stdout
    (job,), _ = submitted(out)
    jobs = [job]
    try:
        slurm_cluster.run("scancel", f"{job}_1")
        status = wait_until(lambda: (lambda out: out if "sbatch --array=1 " in out else None)(
            amela(slurm_cluster, "status", run, check=1).stdout), "status to offer shard 1 again")
        (resubmit,) = [line.strip() for line in status.splitlines() if line.strip().startswith("sbatch --array=1 ")]
        # the merge hint waits for the new array AND the task still pending in the first one
        assert f"--dependency=afterok:JOBID:{job} " in status, status
        jobs.append(run_printed(slurm_cluster, resubmit.replace("sbatch ", "sbatch --hold ", 1)))
        status = amela(slurm_cluster, "status", run, check=1).stdout
        assert re.search(r"pending\s+2\s+\[0-1\]", status), status
        assert "resubmit" not in status and jobs[1] in status
        again = amela(slurm_cluster, "run", ECHO, corpus, "-o", run, "--shards", 2, "--workers", 0,
                      "--backend", "sbatch", "--no-merge-job").stdout
        assert "already queued or running, not submitted again: 0-1" in again and "submitted array" not in again
    finally:
        slurm_cluster.run("scancel", *jobs, check=False)


def test_a_second_usr1_while_stopping_requeues_once(slurm_cluster, tmp_path):
    corpus = make_echo_corpus(tmp_path / "m.jsonl", 12)
    run = tmp_path / "run"
    out = amela(slurm_cluster, "run", ECHO, corpus, "-o", run, "--workers", 0, "--sleep-s", 0.4, "--batch-size", 1,
                "--backend", "sbatch", "--time", "10", "--signal-delay-s", 60, "--no-merge-job").stdout
    (job,), _ = submitted(out)
    wait_for_lines(run / "shards" / "00000" / "output.partial", 2)
    # SLURM's own signal and a user's, or a user who pressed twice: both sent at once (two scancel started together,
    # so on a loaded host the second still lands while the first one's shutdown runs, not on the requeued task).
    # --batch signals only the batch shell; a call that blocked (the reported `--full` behaviour) would time out.
    calls = [subprocess.Popen(["scancel", "--signal=USR1", "--batch", f"{job}_0"], env=slurm_cluster.env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    codes = [c.wait(timeout=30) for c in calls]
    assert 0 in codes, [c.stderr.read() for c in calls]
    assert slurm_cluster.wait_for_job(job, timeout_s=120) == {f"{job}_0": "COMPLETED"}
    history = [s for s, _ in slurm_cluster.sacct_states(job, duplicates=True).values()]
    assert history == ["REQUEUED", "COMPLETED"], history
    assert json.loads((run / "shards" / "00000" / "stats.json").read_text())["ok"] == 12


def test_the_documented_vad_script_fits_a_small_node(slurm_cluster, tmp_path):
    """The example at the top of slurm/vad.slurm, as written, is accepted by a node with 2 CPUs; resources can be
    set by sbatch flags or SBATCH_* variables."""
    import subprocess

    corpus = make_echo_corpus(tmp_path / "m.jsonl", 2)

    def test_only(*flags, **env):
        return subprocess.run(["sbatch", "--test-only", *flags, "--array=0-1", str(ROOT / "slurm" / "vad.slurm"),
                               str(corpus), str(tmp_path / "run")], capture_output=True, text=True,
                              env=job_env(slurm_cluster, **env), timeout=30)

    assert slurm_cluster.cpus >= 2
    proc = test_only()
    assert proc.returncode == 0 and "to start at" in proc.stderr, proc.stderr
    too_big = str(slurm_cluster.cpus + 1)
    assert test_only(f"--cpus-per-task={too_big}").returncode != 0  # a flag wins over the #SBATCH line
    proc = test_only(SBATCH_MEM_PER_NODE=f"{slurm_cluster.memory_mb * 4}M")
    assert proc.returncode != 0, proc.stderr  # so does the environment
