"""`amela plan` with a local pilot, on a stage whose speed is known: its prediction is checked against a full run."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

PACED = "tests.planner.stages:PacedStage"


def make_corpus(path: Path, n: int) -> Path:
    # durations 1.0 .. 5.0 s, mixed so that the sample must be stratified to represent them
    path.write_text("".join(json.dumps({"audio_filepath": f"/data/a{i}.wav", "duration": 1.0 + (i * 7) % 9 * 0.5})
                            + "\n" for i in range(n)))
    return path


def amela(*args, check: int | None = 0, env: dict | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "amela", *map(str, args)], capture_output=True, text=True,
                          timeout=300, env=env)
    if check is not None:
        assert proc.returncode == check, f"{args}\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.mark.slow
def test_local_pilot_predicts_a_full_local_run_within_20_percent(tmp_path):
    corpus = make_corpus(tmp_path / "m.jsonl", 60)  # 180 s of audio: 18 s of sleep + 1 s set-up
    opts = ["--workers", 1, "--sleep-per-audio-s", 0.1, "--setup-s", 1.0]
    out = amela("plan", PACED, corpus, "-o", tmp_path / "run", *opts, "--pilot-items", 8,
                "--budget-gpu-hours", 1).stdout
    sizing = json.loads((tmp_path / "run-pilot" / "sizing.json").read_text())
    assert sizing["items"] == 60 and sizing["pilot"]["items"] == 8 and sizing["audio_seconds"] == 180.0
    # the sample spans the durations (strata), not the first 8 lines
    sample = [json.loads(line)["duration"] for line in (tmp_path / "run-pilot" / "sample.jsonl").read_text().split()]
    assert min(sample) <= 1.5 and max(sample) >= 4.5
    assert "budget:" in out and "fits" in out and sizing["command"] in out
    assert "--shards 1 " in sizing["command"] and "--sleep-per-audio-s 0.1" in sizing["command"]

    t = time.monotonic()
    amela("run", PACED, corpus, "-o", tmp_path / "full", *opts, "--no-progress")
    measured_s = time.monotonic() - t
    assert json.loads((tmp_path / "full" / "stats.json").read_text())["ok"] == 60
    print(f"predicted {sizing['local_s']:.1f} s, measured {measured_s:.1f} s")  # shown with -s
    assert abs(sizing["local_s"] - measured_s) <= 0.2 * measured_s, (sizing["local_s"], measured_s)


def test_plan_refuses_to_replace_a_directory_that_is_not_a_pilot(tmp_path):
    corpus = make_corpus(tmp_path / "m.jsonl", 4)
    (tmp_path / "run-pilot").mkdir()
    (tmp_path / "run-pilot" / "precious.txt").write_text("keep me")
    proc = amela("plan", PACED, corpus, "-o", tmp_path / "run", "--setup-s", 0, check=2)
    assert "is not an `amela plan` pilot" in proc.stderr and "Traceback" not in proc.stderr
    assert (tmp_path / "run-pilot" / "precious.txt").read_text() == "keep me"


def test_plan_refuses_flags_about_an_existing_run_or_a_submission(tmp_path):
    corpus = make_corpus(tmp_path / "m.jsonl", 4)
    proc = amela("plan", PACED, corpus, "-o", tmp_path / "run", "--retry-failed", "--keep-plan", check=2)
    assert "does not take --retry-failed, --keep-plan" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "run-pilot").exists()  # refused before any pilot ran


def test_plan_help_explains_the_planner():
    out = amela("plan", PACED, "--help").stdout
    for words in ("--pilot-items", "--budget-gpu-hours", "--safety", "MaxTime", "--sleep-per-audio-s"):
        assert words in out


def test_over_budget_is_said_and_exits_1(tmp_path):
    corpus = make_corpus(tmp_path / "m.jsonl", 6)
    proc = amela("plan", PACED, corpus, "-o", tmp_path / "run", "--workers", 0, "--setup-s", 0,
                 "--sleep-per-audio-s", 0.01, "--pilot-items", 3, "--budget-gpu-hours", 1e-6, check=1)
    assert "DOES NOT FIT" in proc.stdout and "submit with:" in proc.stdout
    sizing = json.loads((tmp_path / "run-pilot" / "sizing.json").read_text())
    assert sizing["sizing"]["fits_budget"] is False and sizing["pilot"]["items"] == 3
    # the pilot is an ordinary run directory: merged, with its outputs
    assert len((tmp_path / "run-pilot" / "paced.jsonl").read_text().splitlines()) == 3


@pytest.mark.skipif(not shutil.which("scontrol"), reason="SLURM's clients are not installed")
def test_plan_without_a_reachable_controller_plans_without_limits(tmp_path):
    # SLURM's clients installed, its controller down (a workstation, CI): the local pilot runs and the plan says why
    # it checked no partition limits, instead of refusing with "no default partition"
    conf = tmp_path / "slurm.conf"
    conf.write_text("ClusterName=dead\nSlurmctldHost=localhost(127.0.0.1)\nSlurmctldPort=9\n"
                    "NodeName=localhost CPUs=1 State=UNKNOWN\nPartitionName=p Nodes=localhost Default=YES\n")
    corpus = make_corpus(tmp_path / "m.jsonl", 4)
    env = {**os.environ, "SLURM_CONF": str(conf)}
    proc = amela("plan", PACED, corpus, "-o", tmp_path / "run", "--workers", 0, "--setup-s", 0,
                 "--sleep-per-audio-s", 0.01, "--pilot-items", 2, env=env)
    assert "could not reach a SLURM controller" in proc.stdout and "partition limits not checked" in proc.stdout
    assert "--partition" not in json.loads((tmp_path / "run-pilot" / "sizing.json").read_text())["command"]
    # a partition named by the user cannot be checked either: that is said, not guessed
    proc = amela("plan", PACED, corpus, "-o", tmp_path / "run2", "--partition", "gpu", "--setup-s", 0, check=2,
                 env=env)
    assert "--partition gpu: scontrol could not read the partitions" in proc.stderr and "Traceback" not in proc.stderr
