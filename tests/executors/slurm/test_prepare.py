"""`amela prepare` (the first step of every task of a hand-written script) and `--dry-run`: no cluster needed."""
from __future__ import annotations

import json
import subprocess
import sys

from .helpers import ECHO, make_echo_corpus


def _amela(*args, check=0, env=None):
    proc = subprocess.run([sys.executable, "-m", "amela", *map(str, args)], capture_output=True, text=True, env=env,
                          timeout=120)
    assert check is None or proc.returncode == check, proc.stdout + proc.stderr
    return proc


def test_many_tasks_preparing_at_once_agree_on_one_plan(tmp_path):
    corpus = make_echo_corpus(tmp_path / "m.jsonl", 20)
    run = tmp_path / "run"
    procs = [subprocess.Popen([sys.executable, "-m", "amela", "prepare", ECHO, str(corpus), "-o", str(run),
                               "--shards", "4", "--workers", str(w)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for w in range(6)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 6, outs
    plan = json.loads((run / "plan.json").read_text())
    assert plan["num_shards"] == 4 and sum(plan["shard_items"]) == 20
    assert all("in 4 shard(s)" in out for out, _ in outs)


def test_a_prepared_run_keeps_its_shard_count_but_other_options_must_agree(tmp_path):
    corpus = make_echo_corpus(tmp_path / "m.jsonl", 10)
    run = tmp_path / "run"
    _amela("prepare", ECHO, corpus, "-o", run, "--shards", 5)
    before = (run / "shards" / "00003" / "input.jsonl").read_bytes()
    # A rerun of tasks 0,3 (SLURM_ARRAY_TASK_MAX + 1 = 4) keeps the recorded split of 5.
    proc = _amela("prepare", ECHO, corpus, "-o", run, "--shards", 4)
    assert "already split into 5 shard(s)" in proc.stderr and "in 5 shard(s)" in proc.stdout
    assert (run / "shards" / "00003" / "input.jsonl").read_bytes() == before
    proc = _amela("prepare", ECHO, corpus, "-o", run, "--shards", 4, "--sleep-s", 1, check=2)
    assert "different configuration" in proc.stderr and "options.sleep_s: 0.0 -> 1.0" in proc.stderr


def test_auto_tuned_values_apply_only_when_creating(tmp_path):
    corpus = make_echo_corpus(tmp_path / "m.jsonl", 4)
    run = tmp_path / "run"
    _amela("prepare", ECHO, corpus, "-o", run, "--auto", "batch_size=7")
    assert "batch_size: 7" in (run / "config.yaml").read_text()
    # Another task tuned differently (another GPU): the recorded value wins, no error.
    _amela("prepare", ECHO, corpus, "-o", run, "--auto", "batch_size=3")
    # A value typed by the user always wins over an auto-tuned one (and must agree with the record).
    proc = _amela("prepare", ECHO, corpus, "-o", run, "--auto", "batch_size=7", "--batch-size", 3, check=2)
    assert "options.batch_size: 7 -> 3" in proc.stderr
    fresh = tmp_path / "fresh"
    _amela("prepare", ECHO, corpus, "-o", fresh, "--auto", "batch_size=7", "--batch-size", 2)
    assert "batch_size: 2" in (fresh / "config.yaml").read_text()
    proc = _amela("prepare", ECHO, corpus, "-o", fresh, "--auto", "nonsense", check=2)
    assert "--auto 'nonsense': expected OPTION=VALUE" in proc.stderr


def test_dry_run_prints_scripts_and_split_commands_without_submitting(tmp_path):
    corpus = make_echo_corpus(tmp_path / "m.jsonl", 10)
    run = tmp_path / "run"
    out = _amela("run", ECHO, corpus, "-o", run, "--shards", 5, "--backend", "sbatch", "--dry-run",
                 "--max-array-size", 2, "--array-parallelism", 1, "--partition", "cpu", "--time", "30").stdout
    script = run / "slurm" / "echo.sbatch"
    assert f"# {script} (not written)" in out and "#SBATCH --partition=cpu" in out and "#SBATCH --time=30" in out
    assert "would prepare" in out and "10 item(s) in 5 shard(s)" in out
    assert not run.exists()  # no side effects: a later real submission may use other flags
    _amela("prepare", ECHO, corpus, "-o", run, "--shards", 3)
    commands = [line for line in out.splitlines() if line.startswith("sbatch ")]
    assert commands == [f"sbatch --array=0-1%1 {script} 0",
                        f"sbatch --dependency=afterany:JOB1 --array=0-1%1 {script} 2",
                        f"sbatch --dependency=afterany:JOB2 --array=0%1 {script} 4",
                        f"sbatch --dependency=afterok:JOB1:JOB2:JOB3 --kill-on-invalid-dep=yes {run}/slurm/merge.sbatch"]
    assert not (run / "slurm_jobs.json").exists()
