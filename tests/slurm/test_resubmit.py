"""`amela status RUN_DIR --resubmit` on the real cluster: a task that ran out of time has its shard split in two and
both halves finish (output identical to a local run, in order, nothing twice); a task that keeps failing is
resubmitted at most --max-attempts times; an item that kills its worker stays a failure and is never retried.
OUT_OF_MEMORY cannot happen here (no memory enforcement without cgroups): tests/slurm/test_repair_logic.py."""
from __future__ import annotations

import json
import re

import pytest

from .helpers import ECHO, FAULTY, amela, make_echo_corpus, read_lines, submitted, wait_until

pytestmark = pytest.mark.slurm


@pytest.mark.slow
def test_timed_out_task_is_split_in_two_and_both_halves_finish(slurm_cluster, tmp_path):
    corpus = make_echo_corpus(tmp_path / "m.jsonl", 8)
    local = tmp_path / "local"
    amela(slurm_cluster, "run", ECHO, corpus, "-o", local, "--workers", 0)
    run = tmp_path / "run"
    # 8 items x 12 s in one task with a 1-minute limit and no USR1/requeue (--signal-delay-s 0): SLURM times it out.
    opts = ["--workers", 0, "--sleep-s", 12, "--batch-size", 1]
    out = amela(slurm_cluster, "run", ECHO, corpus, "-o", run, *opts, "--backend", "sbatch", "--time", "1",
                "--signal-delay-s", 0).stdout
    (job,), merge = submitted(out)
    assert slurm_cluster.wait_for_job(job, timeout_s=180) == {f"{job}_0": "TIMEOUT"}
    assert slurm_cluster.wait_for_job(merge, timeout_s=60) == {merge: "CANCELLED"}
    done_before = len(read_lines(run / "shards" / "00000" / "output.partial"))
    assert 2 <= done_before <= 6, done_before

    status = amela(slurm_cluster, "status", run, "--resubmit", check=1).stdout
    assert re.search(r"timed-out\s+1\s+\[0\]", status), status
    assert "shard 0: TIMEOUT -> split: shard 0 keeps half of what is left, new shard 1 the other half" in status
    plan = json.loads((run / "plan.json").read_text())
    assert plan["num_shards"] == 2 and plan["shard_items"][0] + plan["shard_items"][1] == 8
    history = [json.loads(line) for line in read_lines(run / "resubmissions.jsonl")]
    assert [(e["shard"], e["attempt"], e["cause"], e["action"]) for e in history] == [
        (0, 1, "TIMEOUT", "split"), (1, 1, "TIMEOUT", "split")]
    new_job = history[0]["job"]
    assert new_job and history[1]["job"] == new_job
    merges = [j["job_id"] for j in json.loads((run / "slurm_jobs.json").read_text())["jobs"] if j["kind"] == "merge"]
    assert len(merges) == 2  # the cancelled one and a new one after the resubmission
    assert slurm_cluster.wait_for_job(merges[-1], timeout_s=150) == {merges[-1]: "COMPLETED"}
    assert set(slurm_cluster.wait_for_job(new_job).values()) == {"COMPLETED"}

    assert read_lines(run / "echo.jsonl") == read_lines(local / "echo.jsonl")  # input order, each record once
    stats = json.loads((run / "stats.json").read_text())
    assert stats["ok"] == 8 and stats["shards"] == 2 and stats["complete"]
    # Shard 0 resumed past what it had written before the time limit; shard 1 started with the moved records.
    log = (run / "logs" / f"echo_{new_job}_0.out").read_text()
    assert f"resuming, {done_before} of {plan['shard_items'][0]} items already done" in log, log
    status = amela(slurm_cluster, "status", run).stdout
    assert re.search(r"done\s+2\b", status) and "resubmissions: 2 for 2 shard(s)" in status, status
    assert "TIMEOUT -> split into 0+1" in status


def test_a_task_that_keeps_failing_is_resubmitted_at_most_n_times(slurm_cluster, tmp_path):
    corpus = make_echo_corpus(tmp_path / "m.jsonl", 6)
    flag = tmp_path / "fault.flag"
    flag.touch()
    run = tmp_path / "run"
    # Shard 0 (items 0, 2, 4): item2 kills its worker every time; shard 1 (1, 3, 5): the task itself fails.
    opts = ["--shards", 2, "--workers", 1, "--kill-on", "item2.wav", "--fault-on", "item3.wav", "--fault-flag", flag]
    (job,), merge = submitted(amela(slurm_cluster, "run", FAULTY, corpus, "-o", run, *opts, "--backend",
                                    "sbatch").stdout)
    assert slurm_cluster.wait_for_job(job, timeout_s=120) == {f"{job}_0": "COMPLETED", f"{job}_1": "FAILED"}
    wait_until(lambda: slurm_cluster.squeue_states(merge).get(merge) == "CANCELLED", "the merge job cancelled")

    status = amela(slurm_cluster, "status", run, "--resubmit", "--max-attempts", 1, check=1).stdout
    assert "shard 1: FAILED -> same again" in status and "shard 0:" not in status.split("resubmitted")[1], status
    again = json.loads(read_lines(run / "resubmissions.jsonl")[0])["job"]
    # (sacct may list a one-task array as "JOB" for a moment, "JOB_1" later: only the state is compared)
    assert set(slurm_cluster.wait_for_job(again, timeout_s=120).values()) == {"FAILED"}

    status = amela(slurm_cluster, "status", run, "--resubmit", "--max-attempts", 1, check=1).stdout
    assert "shard 1: FAILED -> not resubmitted (resubmitted 1 time(s) already" in status, status
    assert f"sbatch --array=1 {run / 'slurm' / 'faulty.sbatch'} 0" in status  # by hand, once fixed
    history = [json.loads(line) for line in read_lines(run / "resubmissions.jsonl")]
    assert [(e["shard"], e["action"], bool(e["job"])) for e in history] == [(1, "again", True)]
    # The item that killed its worker is a failure of a finished shard: never resubmitted, never retried.
    failures = [json.loads(line.split("\t", 1)[1]) for line in read_lines(run / "shards" / "00000" /
                                                                            "failures.partial")]
    assert [f["audio_filepath"] for f in failures] == ["/data/item2.wav"]
    assert re.search(r"done\s+1\b", status), status
