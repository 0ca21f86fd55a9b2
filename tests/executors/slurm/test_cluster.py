"""Smoke tests of the local SLURM cluster itself: the executors built on it rely on each behaviour checked here."""

from __future__ import annotations

import re
import time

import pytest

pytestmark = pytest.mark.slurm


def _script(body: str) -> str:
    return "#!/bin/bash\nset -eu\n" + body + "\n"


def test_facts_match_the_live_cluster(slurm_cluster):
    info = slurm_cluster.run("scontrol", "show", "node", slurm_cluster.node).stdout
    assert f"Partitions={slurm_cluster.partition}" in info
    assert re.search(rf"\bCPUTot={slurm_cluster.cpus}\b", info)
    assert slurm_cluster.cpus >= 1 and slurm_cluster.memory_mb > 0


def test_trivial_job_runs_and_is_accounted(slurm_cluster, tmp_path):
    marker = tmp_path / "ran.txt"
    job_id = slurm_cluster.sbatch(
        "-o", str(tmp_path / "slurm-%j.out"),
        script=_script(f'echo "job $SLURM_JOB_ID on $(hostname -s)" > {marker}\necho "PATH=$PATH"\necho done'),
    )
    states = slurm_cluster.wait_for_job(job_id, timeout_s=60)
    assert states == {job_id: "COMPLETED"}
    assert slurm_cluster.sacct_states(job_id)[job_id] == ("COMPLETED", "0:0")
    # The job really ran (cgroup tracking in containers reports COMPLETED for jobs that never ran).
    assert marker.read_text().split() == ["job", job_id, "on", slurm_cluster.node]
    out = (tmp_path / f"slurm-{job_id}.out").read_text().splitlines()
    # --export=ALL is the default: the job sees the submitter's PATH.
    assert out == [f"PATH={slurm_cluster.env['PATH']}", "done"]


def test_failing_job_is_failed_with_its_exit_code(slurm_cluster, tmp_path):
    job_id = slurm_cluster.sbatch("-o", str(tmp_path / "%j.out"), script=_script("echo about to fail\nexit 3"))
    assert slurm_cluster.wait_for_job(job_id) == {job_id: "FAILED"}
    assert slurm_cluster.sacct_states(job_id)[job_id] == ("FAILED", "3:0")
    assert (tmp_path / f"{job_id}.out").read_text() == "about to fail\n"


def test_throttled_array_runs_every_task(slurm_cluster, tmp_path):
    # Each task records when it ran, so that the throttle can be checked from what really happened.
    body = f"""echo "$(date +%s.%N) start" > {tmp_path}/task_$SLURM_ARRAY_TASK_ID.txt
sleep 2
echo "$(date +%s.%N) end $SLURM_ARRAY_JOB_ID $SLURM_ARRAY_TASK_COUNT" >> {tmp_path}/task_$SLURM_ARRAY_TASK_ID.txt"""
    job_id = slurm_cluster.sbatch("--array=0-3%2", "-o", str(tmp_path / "%A_%a.out"), script=_script(body))
    assert "ArrayTaskThrottle=2" in slurm_cluster.run("scontrol", "show", "job", job_id).stdout
    states = slurm_cluster.wait_for_job(job_id, timeout_s=90)
    assert states == {f"{job_id}_{i}": "COMPLETED" for i in range(4)}
    spans = []
    for i in range(4):
        start, end = (tmp_path / f"task_{i}.txt").read_text().splitlines()
        assert end.split()[2:] == [job_id, "4"]
        spans.append((float(start.split()[0]), float(end.split()[0])))
    # Never more than 2 tasks at once: at any task's start, count the tasks running.
    for start, _ in spans:
        assert sum(s <= start < e for s, e in spans) <= 2


def test_cancelled_job_shows_cancelled(slurm_cluster, tmp_path):
    job_id = slurm_cluster.sbatch("-o", str(tmp_path / "%j.out"), script=_script("sleep 300"))
    slurm_cluster.wait_for_state(job_id, {"RUNNING"}, timeout_s=60)
    slurm_cluster.run("scancel", job_id)
    assert slurm_cluster.wait_for_job(job_id, timeout_s=60) == {job_id: "CANCELLED"}


@pytest.mark.parametrize("request_args", [["--gres=gpu:1"], ["--gpus=1"], ["--ntasks=1", "--gpus-per-task=1"]])
def test_gpu_request_is_refused_at_submission(slurm_cluster, request_args):
    with pytest.raises(slurm_cluster.CommandError, match="Requested node configuration is not available"):
        slurm_cluster.sbatch(*request_args, wrap="true")


def test_array_limit_is_max_array_size(slurm_cluster):
    last = slurm_cluster.max_array_size - 1
    with pytest.raises(slurm_cluster.CommandError, match="(?i)invalid job array"):
        slurm_cluster.sbatch(f"--array={last + 1}", "--hold", wrap="true")
    job_id = slurm_cluster.sbatch(f"--array={last}", "--hold", wrap="true")
    try:
        assert f"{job_id}_{last}" in slurm_cluster.squeue_states(job_id)
    finally:
        slurm_cluster.run("scancel", job_id)


def test_requeued_job_runs_again(slurm_cluster, tmp_path):
    runs = tmp_path / "runs.txt"
    # The first run waits to be requeued; the second (SLURM_RESTART_COUNT=1) ends at once.
    body = f"""echo "run ${{SLURM_RESTART_COUNT:-0}}" >> {runs}
if [ "${{SLURM_RESTART_COUNT:-0}}" = 0 ]; then sleep 300; fi"""
    job_id = slurm_cluster.sbatch("--requeue", "-o", str(tmp_path / "%j.out"), script=_script(body))
    slurm_cluster.wait_for_state(job_id, {"RUNNING"}, timeout_s=60)
    _wait_for_lines(runs, 1)
    slurm_cluster.run("scontrol", "requeue", job_id)
    assert slurm_cluster.wait_for_job(job_id, timeout_s=90) == {job_id: "COMPLETED"}
    assert runs.read_text().splitlines() == ["run 0", "run 1"]
    history = [state for state, _ in slurm_cluster.sacct_states(job_id, duplicates=True).values()]
    assert history == ["REQUEUED", "COMPLETED"]


def _wait_for_lines(path, count, timeout_s=30):
    deadline = time.monotonic() + timeout_s
    while not (path.exists() and len(path.read_text().splitlines()) >= count):
        assert time.monotonic() < deadline, f"{path} never got {count} line(s)"
        time.sleep(0.2)
