"""`amela run --backend sbatch` on the real single-node cluster: arrays, throttling, merge jobs, failed, cancelled
and requeued tasks, and what `amela status` makes of them. Every merged output is compared with a local run."""
from __future__ import annotations

import json
import re

import pytest

from .helpers import (
    ECHO,
    FAULTY,
    amela,
    make_audio_corpus,
    make_echo_corpus,
    read_lines,
    run_printed,
    submitted,
    wait_for_lines,
    wait_until,
)

pytestmark = pytest.mark.slurm


@pytest.fixture(scope="module")
def vad_corpus(tmp_path_factory):
    return make_audio_corpus(tmp_path_factory.mktemp("vad") / "corpus.jsonl")


@pytest.fixture(scope="module")
def vad_local(slurm_cluster, vad_corpus):
    run = vad_corpus.parent / "local"
    amela(slurm_cluster, "run", "vad", vad_corpus, "-o", run, "--segments")
    return run


def test_vad_array_of_4_throttled_to_2_matches_a_local_run(slurm_cluster, vad_corpus, vad_local, tmp_path):
    run = tmp_path / "run"
    out = amela(slurm_cluster, "run", "vad", vad_corpus, "-o", run, "--segments", "--shards", 4, "--backend", "sbatch",
                "--array-parallelism", 2, "--gpus-per-task", 0).stdout
    arrays, merge = submitted(out)
    assert len(arrays) == 1 and merge, out
    assert "ArrayTaskThrottle=2" in slurm_cluster.run("scontrol", "show", "job", arrays[0]).stdout
    assert slurm_cluster.wait_for_job(merge, timeout_s=120) == {merge: "COMPLETED"}
    assert slurm_cluster.wait_for_job(arrays[0]) == {f"{arrays[0]}_{i}": "COMPLETED" for i in range(4)}
    for name in ("vad.jsonl", "vad_segments.jsonl", "failures.jsonl"):
        assert read_lines(run / name) == read_lines(vad_local / name), name
    assert len(read_lines(run / "vad.jsonl")) == 8
    # Each task logged into RUN_DIR/logs/<stage>_<jobid>_<taskid>.out and ran the shard of its index.
    for i in range(4):
        assert f"runs shard {i} on" in (run / "logs" / f"vad_{arrays[0]}_{i}.out").read_text()
    status = amela(slurm_cluster, "status", run).stdout
    assert re.search(r"done\s+4\b", status) and "merge: COMPLETED" in status, status
    # Launching again submits nothing: every shard is done and merged.
    again = amela(slurm_cluster, "run", "vad", vad_corpus, "-o", run, "--segments", "--shards", 4,
                  "--backend", "sbatch").stdout
    assert "nothing to submit" in again and not submitted(again)[0]


def test_failed_task_is_named_and_rerunning_only_it_completes_the_run(slurm_cluster, tmp_path):
    corpus = make_echo_corpus(tmp_path / "m.jsonl", 15)
    flag = tmp_path / "fault.flag"
    flag.touch()
    # round_robin over 5 shards: item i is in shard i % 5. Shards 1 and 4 fail; arrays of at most 3 task ids, so
    # shard 4 is task 1 of the second array (offset 3).
    opts = ["--shards", 5, "--workers", 0, "--fault-on", "item1.wav,item9.wav", "--fault-flag", flag]
    local = tmp_path / "local"
    amela(slurm_cluster, "run", FAULTY, corpus, "-o", local, "--workers", 0, "--fault-on", "item1.wav,item9.wav",
          "--fault-flag", tmp_path / "never")
    run = tmp_path / "run"
    out = amela(slurm_cluster, "run", FAULTY, corpus, "-o", run, *opts, "--backend", "sbatch",
                "--max-array-size", 3).stdout
    arrays, merge = submitted(out)
    assert len(arrays) == 2, out
    # A task failed, so the merge job (afterok) can never run: SLURM cancels it.
    assert slurm_cluster.wait_for_job(merge, timeout_s=120) == {merge: "CANCELLED"}
    states = {**slurm_cluster.wait_for_job(arrays[0]), **slurm_cluster.wait_for_job(arrays[1])}
    assert states[f"{arrays[0]}_1"] == "FAILED" and states[f"{arrays[1]}_1"] == "FAILED", states

    status = amela(slurm_cluster, "status", run, check=1).stdout
    assert re.search(r"failed\s+2\s+\[1,4\]", status), status
    assert f"SLURM task {arrays[0]}_1: FAILED, exit 1:0" in status
    assert f"SLURM task {arrays[1]}_1: FAILED, exit 1:0" in status
    assert "injected fault for /data/item1.wav" in status and "injected fault for /data/item9.wav" in status
    commands = [line.strip() for line in status.splitlines() if line.strip().startswith("sbatch --array")]
    script = run / "slurm" / "faulty.sbatch"
    # One array covers both: the cluster's MaxArraySize (not the 3 used above) is what limits a resubmission.
    assert commands == [f"sbatch --array=1,4 {script} 0"], status

    flag.unlink()
    reruns = [run_printed(slurm_cluster, c) for c in commands]
    for job in reruns:
        assert set(slurm_cluster.wait_for_job(job, timeout_s=90).values()) == {"COMPLETED"}
    status = amela(slurm_cluster, "status", run).stdout
    assert re.search(r"done\s+5\b", status) and "all shards done; merge with" in status, status
    amela(slurm_cluster, "merge", run)
    for name in ("faulty.jsonl", "failures.jsonl", "echo_report.txt"):
        assert read_lines(run / name) == read_lines(local / name), name
    assert len(read_lines(run / "faulty.jsonl")) == 15


def test_cancelled_task_shows_as_cancelled(slurm_cluster, tmp_path):
    corpus = make_echo_corpus(tmp_path / "m.jsonl", 4)
    run = tmp_path / "run"
    out = amela(slurm_cluster, "run", ECHO, corpus, "-o", run, "--shards", 2, "--workers", 0, "--sleep-s", 60,
                "--backend", "sbatch", "--no-merge-job").stdout
    (job,), merge = submitted(out)
    assert merge is None
    try:
        wait_until(lambda: slurm_cluster.squeue_states(job).get(f"{job}_1") == "RUNNING", "task 1 running")
        slurm_cluster.run("scancel", f"{job}_1")
        wait_until(lambda: slurm_cluster.sacct_states(job).get(f"{job}_1", ("",))[0] == "CANCELLED",
                   "sacct to record the cancellation")
        status = amela(slurm_cluster, "status", run, check=1).stdout
        assert re.search(r"cancelled\s+1\s+\[1\]", status), status
        assert re.search(r"running\s+1\s+\[0\]", status), status
        assert f"shard 1: cancelled: SLURM task {job}_1: CANCELLED" in status
        assert f"sbatch --array=1 {run / 'slurm' / 'echo.sbatch'} 0" in status
        # Shard 0 is still queued/running in SLURM: launching again must not submit it twice.
        again = amela(slurm_cluster, "run", ECHO, corpus, "-o", run, "--shards", 2, "--workers", 0, "--sleep-s", 60,
                      "--backend", "sbatch", "--dry-run").stdout
        assert "already queued or running, not submitted again: 0" in again
        assert "--array=1 " in again and "--array=0" not in again
    finally:
        slurm_cluster.run("scancel", job, check=False)


def test_gpu_request_on_a_cpu_only_cluster_is_a_clear_error(slurm_cluster, tmp_path):
    corpus = make_echo_corpus(tmp_path / "m.jsonl", 2)
    run = tmp_path / "run"
    proc = amela(slurm_cluster, "run", ECHO, corpus, "-o", run, "--backend", "sbatch", "--gpus-per-task", 1, check=1)
    assert "sbatch refused the job" in proc.stderr and "Requested node configuration is not available" in proc.stderr
    assert "--gpus-per-task 0" in proc.stderr
    assert not (run / "slurm_jobs.json").exists()  # nothing was submitted


def test_task_told_its_time_is_up_requeues_itself_and_resumes(slurm_cluster, tmp_path):
    corpus = make_echo_corpus(tmp_path / "m.jsonl", 12)
    local = tmp_path / "local"
    amela(slurm_cluster, "run", ECHO, corpus, "-o", local, "--workers", 0)
    run = tmp_path / "run"
    out = amela(slurm_cluster, "run", ECHO, corpus, "-o", run, "--workers", 0, "--sleep-s", 0.4, "--batch-size", 1,
                "--backend", "sbatch", "--time", "10", "--signal-delay-s", 60, "--no-merge-job").stdout
    (job,), _ = submitted(out)
    wait_for_lines(run / "shards" / "00000" / "output.partial", 3)
    # What SLURM does signal_delay_s before the time limit (--signal=B:USR1@60): USR1 to the batch shell.
    slurm_cluster.run("scancel", "--signal=USR1", "--batch", f"{job}_0")
    assert slurm_cluster.wait_for_job(job, timeout_s=120) == {f"{job}_0": "COMPLETED"}
    history = [s for s, _ in slurm_cluster.sacct_states(job, duplicates=True).values()]
    assert history == ["REQUEUED", "COMPLETED"], history
    log = (run / "logs" / f"echo_{job}_0.out").read_text()
    assert "USR1" in log and "restart 1" in log
    resumed = re.search(r"resuming, (\d+) of 12 items already done", log)
    assert resumed and 3 <= int(resumed.group(1)) < 12, log
    amela(slurm_cluster, "merge", run)
    assert read_lines(run / "echo.jsonl") == read_lines(local / "echo.jsonl")
    assert json.loads((run / "stats.json").read_text())["ok"] == 12
