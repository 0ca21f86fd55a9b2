"""amela.submit(): submitit job arrays on the real cluster, with results, errors, and a checkpointed requeue."""
from __future__ import annotations

import re

import pytest

import amela

from .helpers import ECHO, FAULTY, make_echo_corpus, read_lines, wait_for_lines
from .helpers import amela as amela_cli

pytestmark = pytest.mark.slurm


def _params(cluster) -> dict:
    return {"timeout_min": 5, "cpus_per_task": 1, "slurm_partition": cluster.partition, "slurm_mem": "512M"}


def test_map_array_over_shards_matches_a_local_run(slurm_cluster, tmp_path):
    corpus = make_echo_corpus(tmp_path / "m.jsonl", 9)
    local = tmp_path / "local"
    amela_cli(slurm_cluster, "run", ECHO, corpus, "-o", local, "--workers", 0)
    run = amela.submit(ECHO, corpus, tmp_path / "run", shards=3, workers=0, **_params(slurm_cluster))
    assert run.shards == [0, 1, 2] and len({j.job_id.split("_")[0] for j in run.jobs}) == 1  # one array
    results = run.results()
    assert {s: r["ok"] for s, r in results.items()} == {0: 3, 1: 3, 2: 3}
    stats = run.merge()
    assert stats["ok"] == 9 and stats["complete"]
    assert read_lines(tmp_path / "run" / "echo.jsonl") == read_lines(local / "echo.jsonl")
    status = amela_cli(slurm_cluster, "status", tmp_path / "run").stdout
    assert re.search(r"done\s+3\b", status) and "submitit array, shards 0-2" in status, status


def test_a_raising_job_surfaces_its_traceback_and_a_second_submit_finishes(slurm_cluster, tmp_path):
    import submitit

    corpus = make_echo_corpus(tmp_path / "m.jsonl", 6)
    flag = tmp_path / "fault.flag"
    flag.touch()
    options = {"fault_on": ["item4.wav"], "fault_flag": str(flag)}  # item 4 is in shard 1 of 3
    run = amela.submit(FAULTY, corpus, tmp_path / "run", shards=3, workers=0, options=options,
                       **_params(slurm_cluster))
    errors = run.exceptions()
    assert list(errors) == [1]
    assert isinstance(errors[1], submitit.core.utils.FailedJobError)
    assert "Traceback" in str(errors[1]) and "injected fault for /data/item4.wav" in str(errors[1])
    with pytest.raises(submitit.core.utils.FailedJobError, match="injected fault"):
        run.results()

    flag.unlink()
    again = amela.submit(FAULTY, corpus, tmp_path / "run", shards=3, workers=0, options=options,
                         **_params(slurm_cluster))
    assert again.shards == [1]  # only the shard that is not done
    assert again.results()[1]["ok"] == 2
    assert again.merge()["ok"] == 6


def test_a_preempted_job_checkpoints_requeues_and_resumes(slurm_cluster, tmp_path):
    corpus = make_echo_corpus(tmp_path / "m.jsonl", 12)
    local = tmp_path / "local"
    amela_cli(slurm_cluster, "run", ECHO, corpus, "-o", local, "--workers", 0)
    run = amela.submit(ECHO, corpus, tmp_path / "run", shards=1, workers=0,
                       options={"sleep_s": 0.4, "batch_size": 1}, **_params(slurm_cluster))
    job = run.jobs[0]
    wait_for_lines(tmp_path / "run" / "shards" / "00000" / "output.partial", 3)
    job._interrupt()  # what preemption does: SIGTERM, then submitit's USR2 -> checkpoint() -> requeue
    stats = job.result()
    assert stats["ok"] == 12
    array_id = job.job_id.split("_")[0]
    slurm_cluster.wait_for_job(array_id)  # the result file comes before sacct records the end
    history = [s for s, _ in slurm_cluster.sacct_states(array_id, duplicates=True).values()]
    assert history[0] == "REQUEUED" and history[-1] == "COMPLETED", history
    log = job.stderr() or ""
    assert re.search(r"resuming, ([3-9]|1[01]) of 12 items already done", log), log
    run.merge()
    assert read_lines(tmp_path / "run" / "echo.jsonl") == read_lines(local / "echo.jsonl")


def test_cli_backend_submitit_submits_shards_and_a_merge_job(slurm_cluster, tmp_path):
    corpus = make_echo_corpus(tmp_path / "m.jsonl", 5)
    local = tmp_path / "local"
    amela_cli(slurm_cluster, "run", ECHO, corpus, "-o", local, "--workers", 0)
    run = tmp_path / "run"
    out = amela_cli(slurm_cluster, "run", ECHO, corpus, "-o", run, "--shards", 2, "--workers", 0,
                    "--backend", "submitit", "--cpus-per-task", 1, "--mem", "512M", "--time", "5").stdout
    merge = re.search(r"submitted merge job (\d+)", out).group(1)
    assert slurm_cluster.wait_for_job(merge, timeout_s=120) == {merge: "COMPLETED"}, out
    assert read_lines(run / "echo.jsonl") == read_lines(local / "echo.jsonl")
