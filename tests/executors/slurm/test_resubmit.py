"""`amela status RUN_DIR --resubmit` on the real cluster: a task that ran out of time has its shard split in two and
both halves finish (output identical to a local run, in order, nothing twice); a task that keeps failing is
resubmitted at most --max-attempts times; an item that kills its worker stays a failure and is never retried.
OUT_OF_MEMORY cannot happen here (no memory enforcement without cgroups): tests/executors/slurm/test_repair_logic.py."""
from __future__ import annotations

import json
import re

import pytest

from .helpers import ECHO, FAULTY, amela, make_echo_corpus, read_lines, submitted, wait_until

pytestmark = pytest.mark.slurm


@pytest.mark.slow
def test_timed_out_task_is_split_in_two_and_both_halves_finish(slurm_cluster, tmp_path):
    n = 10  # SLURM enforces a limit up to a minute late, so 5-8 of them may finish; at least 2 are left to split
    corpus = make_echo_corpus(tmp_path / "m.jsonl", n)
    local = tmp_path / "local"
    amela(slurm_cluster, "run", ECHO, corpus, "-o", local, "--workers", 0)
    run = tmp_path / "run"
    # 10 items x 12 s in one task with a 1-minute limit and no USR1/requeue (--signal-delay-s 0): SLURM times it out.
    opts = ["--workers", 0, "--sleep-s", 12, "--batch-size", 1]
    out = amela(slurm_cluster, "run", ECHO, corpus, "-o", run, *opts, "--backend", "sbatch", "--time", "1",
                "--signal-delay-s", 0).stdout
    (job,), merge = submitted(out)
    assert slurm_cluster.wait_for_job(job, timeout_s=180) == {f"{job}_0": "TIMEOUT"}
    assert slurm_cluster.wait_for_job(merge, timeout_s=60) == {merge: "CANCELLED"}
    done_before = len(read_lines(run / "shards" / "00000" / "output.partial"))
    assert 2 <= done_before <= n - 2, done_before

    status = amela(slurm_cluster, "status", run, "--resubmit", check=1).stdout
    assert re.search(r"timed-out\s+1\s+\[0\]", status), status
    assert "shard 0: TIMEOUT -> split: shard 0 keeps half of what is left, new shard 1 the other half" in status
    plan = json.loads((run / "plan.json").read_text())
    assert plan["num_shards"] == 2 and plan["shard_items"][0] + plan["shard_items"][1] == n
    history = [json.loads(line) for line in read_lines(run / "resubmissions.jsonl")]
    assert [(e["shard"], e["attempt"], e["cause"], e["action"]) for e in history] == [
        (0, 1, "TIMEOUT", "split"), (1, 1, "TIMEOUT", "split")]
    new_job = history[0]["job"]
    assert new_job and history[1]["job"] == new_job
    # Asked again while the halves are queued or running: nothing is resubmitted twice.
    again = amela(slurm_cluster, "status", run, "--resubmit", check=1).stdout
    assert "resubmitted" not in again and len(read_lines(run / "resubmissions.jsonl")) == 2, again
    merges = [j["job_id"] for j in json.loads((run / "slurm_jobs.json").read_text())["jobs"] if j["kind"] == "merge"]
    assert len(merges) == 2  # the cancelled one and a new one after the resubmission
    assert slurm_cluster.wait_for_job(merges[-1], timeout_s=150) == {merges[-1]: "COMPLETED"}
    assert set(slurm_cluster.wait_for_job(new_job).values()) == {"COMPLETED"}

    assert read_lines(run / "echo.jsonl") == read_lines(local / "echo.jsonl")  # input order, each record once
    stats = json.loads((run / "stats.json").read_text())
    assert stats["ok"] == n and stats["shards"] == 2 and stats["complete"]
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


def test_pipeline_status_resubmit_repairs_a_step_and_run_resumes_the_steps_below(slurm_cluster, tmp_path):
    corpus = make_echo_corpus(tmp_path / "m.jsonl", 6)
    flag = tmp_path / "fault.flag"
    flag.touch()
    doc = {"slurm": {"cpus_per_task": 1}, "steps": [
        {"name": "a", "stage": FAULTY, "input": str(corpus), "shards": 2, "workers": 0,
         "options": {"fault_on": ["item3.wav"], "fault_flag": str(flag)}},
        {"name": "b", "stage": ECHO, "input": "a", "shards": 1, "workers": 0}]}
    yaml = tmp_path / "pipeline.yaml"
    yaml.write_text(json.dumps(doc))
    root = tmp_path / "root"
    amela(slurm_cluster, "pipeline", "run", yaml, "-o", root, "--backend", "sbatch")
    jobs = json.loads((root / "pipeline_jobs.json").read_text())["steps"]
    b_merge = jobs["b"]["merge"]  # waits on b's array, which waits on a's merge: all cancelled once a task failed
    wait_until(lambda: slurm_cluster.squeue_states(b_merge).get(b_merge) == "CANCELLED", "b's jobs cancelled",
               timeout_s=120)

    flag.unlink()  # the cause fixed: the same again will do
    out = amela(slurm_cluster, "pipeline", "status", root, "--resubmit", check=1).stdout
    assert "step a: shard 1: FAILED -> same again" in out, out
    new = json.loads((root / "pipeline_jobs.json").read_text())["steps"]["a"]
    assert len(new["arrays"]) == 2 and new["merge"] != jobs["a"]["merge"]
    assert slurm_cluster.wait_for_job(new["merge"], timeout_s=120) == {new["merge"]: "COMPLETED"}
    status = amela(slurm_cluster, "pipeline", "status", root, check=1).stdout
    assert re.search(r"\ba\s+complete", status), status
    repair = next(line.split("repair:", 1)[1].strip() for line in status.splitlines() if "repair:" in line)
    amela(slurm_cluster, *repair.split()[1:])
    merge_b = json.loads((root / "pipeline_jobs.json").read_text())["steps"]["b"]["merge"]
    assert slurm_cluster.wait_for_job(merge_b, timeout_s=120) == {merge_b: "COMPLETED"}
    assert amela(slurm_cluster, "pipeline", "status", root).returncode == 0
    got = [json.loads(line)["audio_filepath"] for line in read_lines(root / "b" / "echo.jsonl")]
    assert got == [f"/data/item{i}.wav" for i in range(6)]


def test_out_of_memory_resubmits_with_twice_the_memory(slurm_cluster, tmp_path, monkeypatch, capsys):
    """The cluster here cannot kill a task for memory (no cgroups), so the one thing substituted is the state sacct
    reports for the failed task: its real record (node, ReqMem 300M, ...) with State OUT_OF_MEMORY, as a cgroup kill
    leaves it. Everything after that is real: the decision, sbatch with --mem=600M, the record, the rerun."""
    from amela.executors import slurm_print, slurm_repair
    from amela.paths import RunPaths

    from .helpers import job_env

    corpus = make_echo_corpus(tmp_path / "m.jsonl", 4)
    flag = tmp_path / "fault.flag"
    flag.touch()
    run = tmp_path / "run"
    (job,), merge = submitted(amela(slurm_cluster, "run", FAULTY, corpus, "-o", run, "--workers", 0, "--fault-on",
                                    "item1.wav", "--fault-flag", flag, "--backend", "sbatch", "--mem", "300M").stdout)
    assert set(slurm_cluster.wait_for_job(job, timeout_s=120).values()) == {"FAILED"}
    # sacct may name a one-task array "JOB" for a moment before "JOB_0": wait for the task's own row
    wait_until(lambda: f"{job}_0" in slurm_cluster.sacct_states(job), "sacct's row of the task")
    flag.unlink()
    real = slurm_repair.task_records

    def killed_for_memory(job_ids):
        records = real(job_ids)
        for rec in records.values():
            rec.state = "OUT_OF_MEMORY"
        return records

    monkeypatch.setattr(slurm_repair, "task_records", killed_for_memory)
    for key, value in job_env(slurm_cluster).items():  # what the resubmitted task inherits (sbatch --export=ALL)
        monkeypatch.setenv(key, value)
    wait_until(lambda: slurm_cluster.squeue_states(merge).get(merge) == "CANCELLED", "the merge job cancelled")
    assert slurm_print.print_status(RunPaths(run), resubmit=True) == 1
    out = capsys.readouterr().out
    assert "shard 0: OUT_OF_MEMORY -> more memory [--mem=600M] (--mem 300M -> 600M" in out, out
    entry = json.loads(read_lines(run / "resubmissions.jsonl")[0])
    assert entry["sbatch_args"] == ["--mem=600M"] and entry["cause"] == "OUT_OF_MEMORY"
    assert set(slurm_cluster.wait_for_job(entry["job"], timeout_s=120).values()) == {"COMPLETED"}
    # The task really ran with twice the memory (sacct fills ReqMem in a moment after the end: "16?" until then).
    wait_until(lambda: slurm_cluster.run("sacct", "-n", "-X", "-P", "-j", entry["job"], "-o",
                                         "ReqMem").stdout.split() == ["600M"], "sacct's ReqMem of the new task")
    merges = [j["job_id"] for j in json.loads((run / "slurm_jobs.json").read_text())["jobs"] if j["kind"] == "merge"]
    assert slurm_cluster.wait_for_job(merges[-1], timeout_s=120) == {merges[-1]: "COMPLETED"}
    assert len(read_lines(run / "faulty.jsonl")) == 4
