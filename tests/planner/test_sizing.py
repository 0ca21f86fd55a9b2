"""The planner's arithmetic: the pilot sample, shard count, --time within the partition's limits, hours, budget."""
from __future__ import annotations

import math

import pytest

from amela.errors import ConfigError
from amela.planner.sizing import Limits, Measured, Targets, fmt_time, size_job, stratified_sample

# A task processes 100 audio s per s after a 30 s start-up.
M = Measured(audio_s=1000.0, work_s=10.0, startup_s=30.0, workers=1, where="test")


def test_sample_takes_one_record_from_each_duration_stratum():
    durations = [float(d) for d in range(100, 0, -1)]  # positions 0..99 hold 100 s .. 1 s
    picks = stratified_sample(durations, 10)
    assert picks == sorted(picks) and len(set(picks)) == 10
    chosen = sorted(durations[i] for i in picks)
    # one per decile: the shortest tenth and the longest tenth are both represented
    for s, d in enumerate(chosen):
        assert 10 * s < d <= 10 * (s + 1)
    assert stratified_sample(durations, 10) == picks  # deterministic
    assert sorted(stratified_sample([1.0, 2.0, 3.0], 50)) == [0, 1, 2]  # never more than the corpus


def test_shards_aim_at_the_target_work_per_task():
    audio_s = 100 * 3600.0  # 3,600 s of work at 100 audio s/s
    s = size_job(audio_s, 20.0, 100_000, M, Limits("p"), Targets(task_work_s=600, signal_delay_s=120))
    assert s.shards == 6
    assert s.task_s == pytest.approx(30 + 600)
    assert s.compute_h == pytest.approx((6 * 30 + 3600) / 3600)
    assert s.gpu_h == 0
    # --time covers the largest shard (a sixth of the audio + the longest item) twice, plus the signal delay
    assert s.time_limit_s >= 2 * (30 + (audio_s / 6 + 20) / 100) + 120 and s.time_limit_s % 60 == 0


def test_concurrent_slots_get_several_shards_each_unless_start_up_would_dominate():
    audio_s = 100 * 36000.0  # 10 h of work
    s = size_job(audio_s, 20.0, 10**6, M, Limits("p"), Targets(task_work_s=3600, concurrent=50))
    assert s.shards == 200 and s.parallelism == 50
    assert s.wall_s(50) == pytest.approx(4 * s.task_s)
    # 5,000 slots would make 20,000 tasks of 1.8 s of work: capped where start-up stays a fifth of a task
    s = size_job(audio_s, 20.0, 10**6, M, Limits("p"), Targets(task_work_s=3600, concurrent=5000))
    assert s.shards == math.floor(36000 / 150) and s.parallelism == s.shards
    assert any("only 240 tasks for 5000 slots" in n for n in s.notes)


def test_max_time_is_never_exceeded_shards_get_smaller_instead():
    audio_s = 100 * 36000.0
    limits = Limits("short", max_time_s=3600, max_array_size=100)
    s = size_job(audio_s, 20.0, 10**6, M, limits, Targets(task_work_s=4 * 3600))
    assert s.time_limit_s <= 3600
    assert s.time_limit_s >= 2 * s.task_max_s + 120  # the margin still holds
    assert s.shards > 3 and any("MaxTime" in n for n in s.notes)
    assert s.arrays == math.ceil(s.shards / 100)
    # even a forced --shards is overridden rather than refused by the cluster
    forced = size_job(audio_s, 20.0, 10**6, M, limits, Targets(shards=2))
    assert forced.shards > 2 and forced.time_limit_s <= 3600


def test_an_item_too_long_for_the_partition_is_a_clear_error():
    with pytest.raises(ConfigError, match="MaxTime 00:05:00 cannot hold one task"):
        size_job(50_000.0, 20_000.0, 10, M, Limits("tiny", max_time_s=300), Targets())


def test_budget_is_counted_in_gpu_hours():
    audio_s = 100 * 3600.0
    tg = dict(task_work_s=3600, gpus_per_task=2)
    s = size_job(audio_s, 1.0, 1000, M, Limits(), Targets(budget_h=2.0, **tg))
    assert s.gpu_h == pytest.approx(2 * (30 + 3600) / 3600) and s.fits_budget is False
    assert size_job(audio_s, 1.0, 1000, M, Limits(), Targets(budget_h=2.0, task_work_s=3600)).fits_budget is True


def test_slurm_time_format():
    assert fmt_time(59) == "00:00:59" and fmt_time(3600) == "01:00:00" and fmt_time(90061) == "1-01:01:01"
