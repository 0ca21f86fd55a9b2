"""`amela status --resubmit` without a cluster: splitting a half-done shard (order kept, nothing lost or twice), and
the decisions taken from sacct's record, fed with rows in the exact format sacct 22.05 prints (`sacct -n -P -o
JobID,State,ExitCode,NodeList,ReqMem,Timelimit,MaxRSS`). The local cluster does not enforce memory (no cgroups in
this container: a job asking --mem=100M ran to the end with a MaxRSS of 626696K), so OUT_OF_MEMORY is tested here."""
from __future__ import annotations

import json
import shutil

import pytest

from amela.executors.slurm_repair import cause_of, decide, mem_mb, parse_sacct
from amela.paths import RunPaths
from amela.runner import load_plan
from amela.runner.split import finish_pending, split_shard
from tests.support.helpers import STAGE, amela, make_manifest, read_jsonl


def _lines(path):
    return path.read_text().splitlines()


def test_split_of_a_half_done_shard_resumes_both_halves_and_merges_in_input_order(tmp_path):
    corpus = make_manifest(tmp_path / "m.jsonl", 23)
    opts = ["--shards", 2, "--workers", 0, "--fail-on", "a4.wav"]
    ref = tmp_path / "ref"
    amela("run", STAGE, corpus, "-o", ref, *opts, check=1)  # exit 1: one item failed, as asked
    run = tmp_path / "run"
    amela("prepare", STAGE, corpus, "-o", run, *opts, check=0)
    paths = RunPaths(run)
    # Shard 0 (items 0, 2, 4, ...) was stopped after 3 items: output and failure lines as the runner left them,
    # each output marked so that a record processed again would show.
    ref0 = RunPaths(ref).shard(0)
    done_out = [line.replace('"echo"', '"resumed":true,"echo"') for line in _lines(ref0.output)[:2]]
    (paths.shard(0).output).write_text("\n".join(done_out) + "\n")
    shutil.copyfile(ref0.failures, paths.shard(0).failures)  # item 4 failed
    (paths.shard(0).dir / "STOPPED_ITEMS.json").write_text(json.dumps({"20": 1, "6": 1}))

    new = split_shard(paths, 0)
    assert new == 2
    plan = load_plan(paths)
    assert plan.num_shards == 3 and plan.splits[0].shard == 0 and plan.splits[0].into == 2
    kept = [int(line.split("\t")[0]) for line in _lines(paths.shard(0).input)]
    moved = [int(line.split("\t")[0]) for line in _lines(paths.shard(2).input)]
    assert not set(kept) & set(moved) and sorted(kept + moved) == list(range(0, 23, 2))
    assert {0, 2, 4} <= set(kept) and 22 in moved  # what was done stays; the tail moves
    assert plan.shard_items == [len(kept), 11, len(moved)]
    # An item's count of stops follows it (item 20 moved, item 6 stayed).
    assert json.loads((paths.shard(2).dir / "STOPPED_ITEMS.json").read_text()) == {"20": 1}

    amela("run", STAGE, corpus, "-o", run, *opts, check=1)  # resumes all 3 shards, merges
    out = read_jsonl(run / "echo.jsonl")
    assert [r["audio_filepath"] for r in out] == [r["audio_filepath"] for r in read_jsonl(ref / "echo.jsonl")]
    assert sum(1 for r in out if r.get("resumed")) == 2  # the 2 records done before the split were not redone
    assert read_jsonl(run / "failures.jsonl") == read_jsonl(ref / "failures.jsonl")
    stats = json.loads((run / "stats.json").read_text())
    assert stats["ok"] == 22 and stats["failed"] == 1 and stats["missing"] == 0 and stats["complete"]


def test_a_shard_with_one_record_left_is_not_split_and_an_interrupted_split_is_finished(tmp_path):
    corpus = make_manifest(tmp_path / "m.jsonl", 3)
    run = tmp_path / "run"
    amela("prepare", STAGE, corpus, "-o", run, "--shards", 1, check=0)
    paths = RunPaths(run)
    first = _lines(paths.shard(0).input)[0]
    paths.shard(0).output.write_text(first + "\n")
    paths.shard(0).failures.write_text(_lines(paths.shard(0).input)[1] + "\n")
    assert split_shard(paths, 0) is None and load_plan(paths).num_shards == 1

    # A split stopped after the new shard's input was written: the journal finishes it (no record in two shards).
    paths.shard(0).output.unlink()
    paths.shard(0).failures.unlink()
    paths.shard(1).dir.mkdir(parents=True)
    paths.shard(1).input.write_text(_lines(paths.shard(0).input)[2] + "\n")
    paths.pending_split.write_text(json.dumps({"shard": 0, "into": 1, "at": 0}))
    finish_pending(paths)
    assert not paths.pending_split.exists()
    assert len(_lines(paths.shard(0).input)) == 2 and load_plan(paths).shard_items == [2, 1]


# Rows as sacct 22.05 prints them: the allocation row, then its steps. 576: a task that reached --time=1 (real rows
# from the local cluster); 577: the same with the batch step killed for memory (state and exit code as task/cgroup
# reports them, ExitCode 0:125); 578: a node failure on a multi-node NodeList; 579: an older per-CPU ReqMem.
SACCT = """\
576_3|TIMEOUT|0:0|vm|512M|00:01:00|
576_3.batch|CANCELLED|0:15|vm|||3284K
577_1|OUT_OF_MEMORY|0:125|vm|100M|365-00:00:00|
577_1.batch|OUT_OF_MEMORY|0:125|vm|||626696K
577_1.extern|COMPLETED|0:0|vm|||1024K
578_0|NODE_FAIL|0:0|gpu07|32G|08:00:00|
579_2|FAILED|1:0|vm|2000Mc|01:00:00|
579_4|FAILED|0:0|vm|4G|01:00:00|
579_4.batch|OUT_OF_MEMORY|0:125|vm|||4194000K
580_[0-3%2]|PENDING|0:0|None assigned|512M|00:01:00|
"""


def test_sacct_rows_fold_steps_into_their_task():
    rows = parse_sacct(SACCT)
    assert set(rows) == {"576_3", "577_1", "578_0", "579_2", "579_4"}  # a pending array range is no task
    assert rows["576_3"].state == "TIMEOUT" and rows["576_3"].time_limit == "00:01:00"
    assert rows["577_1"].state == "OUT_OF_MEMORY" and rows["577_1"].max_rss == "626696K"
    assert rows["579_4"].state == "OUT_OF_MEMORY"  # the allocation row says FAILED, its batch step was OOM-killed
    assert mem_mb("626696K")[0] == pytest.approx(612.0, abs=0.1) and mem_mb("2000Mc") == (2000.0, True)
    assert mem_mb("4G") == (4096.0, False) and mem_mb("") is None


@pytest.mark.parametrize("key,squeue_state,action,args", [
    ("576_3", "TIMEOUT", "split", []),
    ("577_1", "OUT_OF_MEMORY", "more-memory", ["--mem=200M"]),
    ("579_4", "FAILED", "more-memory", ["--mem=8192M"]),
    ("579_2", "FAILED", "again", []),
])
def test_decisions_follow_why_the_task_ended(key, squeue_state, action, args):
    rec = parse_sacct(SACCT)[key]
    rep = decide(3, cause_of(squeue_state, rec), rec, [], 3, node_mb=64000)
    assert (rep.action, rep.sbatch_args) == (action, args), rep


def test_memory_is_capped_by_the_largest_node_and_then_given_up():
    rec = parse_sacct(SACCT)["577_1"]
    assert decide(0, "OUT_OF_MEMORY", rec, [], 3, node_mb=150).sbatch_args == ["--mem=150M"]
    rec.req_mem = "150M"
    rep = decide(0, "OUT_OF_MEMORY", rec, [], 3, node_mb=150)
    assert rep.action == "give-up" and "smaller batches" in rep.note


def test_node_failures_accumulate_exclusions_and_earlier_memory_is_kept():
    rec = parse_sacct(SACCT)["578_0"]
    history = [{"shard": 5, "attempt": 1, "sbatch_args": ["--mem=200M", "--exclude=gpu03"]}]
    rep = decide(5, cause_of("NODE_FAIL", rec), rec, history, 3, None)
    assert rep.action == "exclude-node" and rep.sbatch_args == ["--mem=200M", "--exclude=gpu03,gpu07"]


def test_attempts_are_bounded():
    rec = parse_sacct(SACCT)["579_2"]
    history = [{"shard": 1, "attempt": k, "sbatch_args": []} for k in (1, 2, 3)]
    rep = decide(1, "FAILED", rec, history, 3, None)
    assert rep.action == "give-up" and "3 time(s)" in rep.note
    assert decide(1, "FAILED", rec, history[:2], 3, None).action == "again"
    assert decide(1, "never started", None, [], 0, None).action == "give-up"  # --max-attempts 0: report only


def test_a_deleted_split_shard_is_not_rebuilt_from_the_input_and_local_runs_cannot_resubmit(tmp_path):
    corpus = make_manifest(tmp_path / "m.jsonl", 6)
    run = tmp_path / "run"
    amela("prepare", STAGE, corpus, "-o", run, "--shards", 1, check=0)
    paths = RunPaths(run)
    assert split_shard(paths, 0) == 1
    shutil.rmtree(paths.shard(1).dir)
    proc = amela("run-shard", run, 1, check=2)
    assert "a resubmission split that shard" in proc.stderr, proc.stderr
    proc = amela("status", run, "--resubmit", check=2)
    assert "--resubmit needs a run submitted to SLURM" in proc.stderr, proc.stderr
