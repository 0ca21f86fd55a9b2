"""`amela plan` on the real local cluster: a pilot run as one SLURM task predicts the task hours of the run it
recommends (submitted exactly as printed), and its recommendations fit the partition's MaxTime."""
from __future__ import annotations

import json
import shlex
import sys

import pytest

from tests.planner.test_plan_local import PACED, make_corpus

from .helpers import amela, job_env

pytestmark = pytest.mark.slurm


def submit_printed(cluster, command: str) -> list[str]:
    """Run the printed `amela run ...` command as a user would paste it; returns the job ids it recorded."""
    import subprocess

    words = shlex.split(command)
    assert words[:2] == ["amela", "run"], command
    proc = subprocess.run([sys.executable, "-m", "amela", *words[1:]], capture_output=True, text=True, timeout=300,
                          env=job_env(cluster))
    assert proc.returncode == 0, f"{command}\n{proc.stdout}\n{proc.stderr}"
    run_dir = words[words.index("-o") + 1]
    with open(f"{run_dir}/slurm_jobs.json") as fh:
        return [j["job_id"] for j in json.load(fh)["jobs"]]


@pytest.mark.slow
def test_sbatch_pilot_predicts_the_task_hours_of_the_printed_run_within_20_percent(slurm_cluster, tmp_path):
    corpus = make_corpus(tmp_path / "m.jsonl", 60)  # 180 s of audio = 36 s of sleep
    amela(slurm_cluster, "plan", PACED, corpus, "-o", tmp_path / "run", "--workers", 1, "--sleep-per-audio-s", 0.2,
          "--setup-s", 1.0, "--pilot-items", 8, "--backend", "sbatch", "--gpus-per-task", 0,
          "--target-task-min", 0.2, "--array-parallelism", 2)
    sizing = json.loads((tmp_path / "run-pilot" / "sizing.json").read_text())
    assert sizing["pilot"]["where"].startswith("SLURM job") and sizing["pilot"]["startup_s"] > 0
    assert sizing["limits"]["partition"] == slurm_cluster.partition
    shards = sizing["sizing"]["shards"]
    assert 3 <= shards <= 4  # 36 s of work (a little more: per-item overhead) in tasks of about 12 s
    assert "--array-parallelism 2" in sizing["command"] and "--backend sbatch" in sizing["command"]

    array, merge = submit_printed(slurm_cluster, sizing["command"])
    assert slurm_cluster.wait_for_job(merge, timeout_s=240) == {merge: "COMPLETED"}
    slurm_cluster.wait_for_job(array)
    rows = slurm_cluster.run("sacct", "-n", "-X", "-P", "-j", array, "-o", "JobID,State,ElapsedRaw").stdout.split()
    elapsed = [int(r.split("|")[2]) for r in rows if r.split("|")[1] == "COMPLETED"]
    assert len(elapsed) == shards, rows
    predicted_s = sizing["sizing"]["compute_h"] * 3600
    print(f"predicted {predicted_s:.1f} task s, measured {sum(elapsed)} ({elapsed})")  # shown with -s
    assert abs(predicted_s - sum(elapsed)) <= 0.2 * sum(elapsed), (predicted_s, elapsed)


def test_recommendation_fits_the_partitions_max_time_and_the_cluster_accepts_it(slurm_cluster, tmp_path):
    part = "amelaplantest"
    slurm_cluster.run("scontrol", "delete", f"PartitionName={part}", check=False)
    slurm_cluster.run("scontrol", "create", f"PartitionName={part}", f"Nodes={slurm_cluster.node}", "MaxTime=3",
                      "State=UP")
    jobs: list[str] = []
    try:
        # 2,000 items of 100 s at 100 audio s/s: 2,000 s of work, far beyond a 3-minute MaxTime in one task.
        corpus = tmp_path / "m.jsonl"
        corpus.write_text("".join(json.dumps({"audio_filepath": f"/d/{i}.wav", "duration": 100.0}) + "\n"
                                  for i in range(2000)))
        out = amela(slurm_cluster, "plan", PACED, corpus, "-o", tmp_path / "run", "--workers", 1,
                    "--sleep-per-audio-s", 0.01, "--setup-s", 0.2, "--pilot-items", 2, "--partition", part,
                    "--signal-delay-s", 10, "--shards", 1, "--sbatch-arg=--hold").stdout
        sizing = json.loads((tmp_path / "run-pilot" / "sizing.json").read_text())
        assert sizing["limits"]["max_time_s"] == 180
        assert sizing["sizing"]["time_limit_s"] <= 180 and sizing["sizing"]["shards"] > 10
        assert "MaxTime" in out and f"--partition {part}" in sizing["command"]
        # The cluster enforces partition limits at submission (EnforcePartLimits=ALL): what was recommended is
        # accepted (held, then cancelled), while a longer --time is refused.
        jobs = submit_printed(slurm_cluster, sizing["command"])
        assert slurm_cluster.squeue_states(jobs[0])
        refused = slurm_cluster.run("sbatch", "--test-only", "-p", part, "--time", "10", "--wrap", "true",
                                    check=False)
        assert refused.returncode != 0
    finally:
        for job in jobs:
            slurm_cluster.run("scancel", job, check=False)
        slurm_cluster.run("scontrol", "delete", f"PartitionName={part}", check=False)


def test_unknown_partition_names_the_ones_there_are(slurm_cluster, tmp_path):
    corpus = make_corpus(tmp_path / "m.jsonl", 4)
    proc = amela(slurm_cluster, "plan", PACED, corpus, "-o", tmp_path / "run", "--partition", "nosuch", check=2)
    assert "partition 'nosuch' not found" in proc.stderr and slurm_cluster.partition in proc.stderr


def test_a_pilot_that_takes_too_long_is_cancelled_not_left_running(slurm_cluster, tmp_path):
    corpus = make_corpus(tmp_path / "m.jsonl", 4)
    proc = amela(slurm_cluster, "plan", PACED, corpus, "-o", tmp_path / "run", "--setup-s", 60, "--backend", "sbatch",
                 "--gpus-per-task", 0, "--pilot-timeout-s", 1, check=1)
    assert "did not finish within 1 s" in proc.stderr and "Traceback" not in proc.stderr
    with open(tmp_path / "run-pilot" / "slurm_jobs.json") as fh:
        job = json.load(fh)["jobs"][0]["job_id"]
    assert set(slurm_cluster.wait_for_job(job).values()) == {"CANCELLED"}
