"""`amela pipeline run --backend sbatch` on the real cluster: the whole graph queued at once, the same outputs as a
local run, a cancelled ASR task that stops its dependents, and the repair command that completes the pipeline."""
from __future__ import annotations

import json
import re
import shlex

import pytest

from amela.pipeline import submit
from tests.pipeline.conftest import models, records, write_pipeline  # noqa: F401 (models is a fixture)

from .helpers import amela, wait_until

pytestmark = [pytest.mark.slurm, pytest.mark.slow]
OUTPUTS = (("vad", "vad.jsonl"), ("vad", "vad_segments.jsonl"), ("asr", "asr.jsonl"), ("units", "s2s.jsonl"))


def jobs_of(root) -> dict:
    return json.loads((root / "pipeline_jobs.json").read_text())["steps"]


def all_ids(jobs: dict) -> list[str]:
    return [str(i) for step in jobs.values() for v in step.values() for i in (v if isinstance(v, list) else [v]) if i]


def wait_all_final(cluster, ids, timeout_s=600):
    """Every job (and array task) ended, including arrays cancelled before they ever expanded ("123_[0-1]")."""
    from .conftest import FINAL_STATES

    def ended():
        if any(s not in FINAL_STATES for job in ids for s in cluster.squeue_states(job).values()):
            return False
        rows = [state for job in ids for state, _ in cluster.sacct_states(job).values()]
        return rows and all(s in FINAL_STATES for s in rows)
    wait_until(ended, f"jobs {', '.join(ids)} to end", timeout_s=timeout_s, interval_s=1)


def test_pipeline_graph_cancel_and_repair(slurm_cluster, models, tmp_path):  # noqa: F811
    yaml = write_pipeline(tmp_path / "pipeline.yaml", models)
    local = tmp_path / "local"
    submit(str(yaml), str(local), show_progress=False)

    root = tmp_path / "slurm"
    out = amela(slurm_cluster, "pipeline", "run", yaml, "-o", root, "--backend", "sbatch").stdout
    jobs = jobs_of(root)
    assert set(jobs) == {"vad", "asr", "units"}, out
    assert not jobs["vad"]["prepare"] and jobs["asr"]["prepare"] and jobs["units"]["prepare"]
    for job in all_ids(jobs):  # the whole graph is in the queue right after the one command
        assert slurm_cluster.squeue_states(job), f"job {job} not in squeue right after submission"

    # Cancel ASR's task 1 while it runs: its merge and everything downstream must never run.
    asr_array = jobs["asr"]["arrays"][0]
    task = f"{asr_array}_1"
    wait_until(lambda: slurm_cluster.squeue_states(asr_array).get(task) == "RUNNING", f"{task} running",
               timeout_s=300, interval_s=0.2)
    slurm_cluster.run("scancel", task)
    wait_all_final(slurm_cluster, all_ids(jobs))
    assert slurm_cluster.sacct_states(jobs["units"]["arrays"][0])  # it existed ...
    assert not (root / "units" / "s2s.jsonl").exists() and not (root / "asr" / "asr.jsonl").exists()
    assert not (root / "units" / "plan.json").exists()  # ... and its preparation never ran
    status = amela(slurm_cluster, "pipeline", "status", root, check=1).stdout
    asr_line = next(line for line in status.splitlines() if line.strip().startswith("asr "))
    assert "failed" in asr_line and f"{task} CANCELLED" in asr_line, status
    repair = next(line.split("repair:", 1)[1].strip() for line in status.splitlines() if "repair:" in line)
    assert "--backend sbatch" in repair

    # The repair command resubmits ASR's missing shard and re-links the steps below it.
    assert repair.startswith("amela pipeline run ")
    amela(slurm_cluster, *shlex.split(repair)[1:])  # as pasted, with this venv's amela
    new = jobs_of(root)
    assert new["vad"] == jobs["vad"] and new["asr"] != jobs["asr"]
    wait_all_final(slurm_cluster, all_ids({k: new[k] for k in ("asr", "units")}))
    assert amela(slurm_cluster, "pipeline", "status", root).returncode == 0
    for step, name in OUTPUTS:
        got = records(root / step / name)
        assert got == records(local / step / name), f"{step}/{name} differs from the local run"
        keys = [(r["audio_filepath"], r.get("offset")) for r in got]
        assert len(keys) == len(set(keys)), f"{step}/{name} has duplicates"


def test_pipeline_from_python_with_submitit(slurm_cluster, tmp_path, monkeypatch):
    """amela.pipeline.submit(..., backend="submitit") from this process: status, wait, then the local result."""
    from .helpers import job_env

    for key, value in job_env(slurm_cluster).items():  # sbatch here, and jobs importing the tests' echo stage
        monkeypatch.setenv(key, value)
    from tests.pipeline.conftest import SAMPLES

    yaml = tmp_path / "pipeline.yaml"
    yaml.write_text(json.dumps({"slurm": {"cpus_per_task": 1}, "steps": [
        {"name": "vad", "stage": "vad", "input": str(SAMPLES), "shards": 2, "workers": 1,
         "options": {"segments": True}},
        {"name": "echo", "stage": "tests.support.stages:EchoStage", "input": "vad.segments", "shards": 2,
         "workers": 0, "where": "duration >= 1.0"},
    ]}))
    local = tmp_path / "local"
    submit(str(yaml), str(local), show_progress=False)
    p = submit(str(yaml), str(tmp_path / "submitit"), backend="submitit")
    jobs = jobs_of(tmp_path / "submitit")
    assert jobs["echo"]["prepare"] and (tmp_path / "submitit" / "echo" / "logs" / "submitit").is_dir()
    assert {r.step: r.state for r in p.status()}["echo"] in ("queued", "running")
    rows = p.wait(poll_s=2, timeout_s=600)
    assert [(r.step, r.state) for r in rows] == [("vad", "complete"), ("echo", "complete")], rows
    for step, name in (("vad", "vad_segments.jsonl"), ("echo", "echo.jsonl"), ("echo", "filtered.jsonl")):
        assert records(tmp_path / "submitit" / step / name) == records(local / step / name), name


def test_single_run_after_a_run_whose_output_does_not_exist_yet(slurm_cluster, tmp_path):
    """`amela run ... --after RUN_DIR`: the input manifest is written later by that run's merge job."""
    from tests.pipeline.conftest import SAMPLES

    from .helpers import ECHO

    vad = tmp_path / "vad"
    amela(slurm_cluster, "run", "vad", SAMPLES, "-o", vad, "--segments", "--shards", 2, "--backend", "sbatch",
          "--cpus-per-task", 1)
    future = vad / "vad_segments.jsonl"
    echo = tmp_path / "echo"
    out = amela(slurm_cluster, "run", ECHO, future, "-o", echo, "--shards", 2, "--backend", "sbatch",
                "--after", vad, "--cpus-per-task", 1).stdout
    assert "submitted preparation job" in out and not (echo / "plan.json").exists(), out
    merge = re.search(r"submitted merge job (\d+)", out).group(1)
    wait_all_final(slurm_cluster, [merge])
    assert slurm_cluster.sacct_states(merge)[merge][0] == "COMPLETED"
    echoed = records(echo / "echo.jsonl")
    assert [{k: v for k, v in r.items() if k != "echo"} for r in echoed] == records(future)  # every one, in order
    assert amela(slurm_cluster, "status", echo).returncode == 0
