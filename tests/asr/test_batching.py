"""Batch formation by audio seconds (pure functions, no NeMo)."""
import random

from amela.asr import batching
from amela.asr.config import AsrConfig
from amela.asr.stage import AsrStage


def test_batches_respect_the_seconds_budget_and_cover_every_position_once():
    rnd = random.Random(3)
    durations = [rnd.choice([0.4, 2.0, 7.5, 12.0, 31.0]) for _ in range(200)]
    batches = batching.plan_batches(durations, budget_s=60.0)
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(200))
    for b in batches:
        total = sum(max(durations[i], 1.0) for i in b)
        assert total <= 60.0 or len(b) == 1


def test_sorted_batches_go_longest_first_and_group_similar_lengths():
    durations = [1.0, 30.0, 2.0, 29.0, 3.0, 28.0]
    batches = batching.plan_batches(durations, budget_s=60.0)
    assert batches[0] == [1, 3]  # 30 + 29 fit, 28 would not
    flat = [durations[i] for b in batches for i in b]
    assert flat == sorted(durations, reverse=True)


def test_unsorted_batches_keep_input_order():
    durations = [5.0, 50.0, 5.0, 5.0]
    assert batching.plan_batches(durations, 55.0, sort=False) == [[0, 1], [2, 3]]


def test_an_item_longer_than_the_budget_goes_alone():
    assert batching.plan_batches([100.0, 10.0, 10.0], 30.0) == [[0], [1, 2]]


def test_short_items_cost_at_least_one_second():
    # NeMo pads audio under 1 s to 1 s, so twenty 0.1 s items are 20 s of work, not 2 s.
    assert len(batching.plan_batches([0.1] * 20, 10.0)) == 2


def test_budget_from_free_memory_grows_with_memory_and_is_capped():
    small, big = batching.budget_from_free_bytes(4 * 2**30), batching.budget_from_free_bytes(70 * 2**30)
    assert 0 < small < big <= batching.MAX_BATCH_SECONDS
    assert batching.budget_from_free_bytes(10**15) == batching.MAX_BATCH_SECONDS
    # The memory model: what the budget fills is what the model predicts, within the free memory it was given.
    free = 20 * 2**30
    budget = batching.budget_from_free_bytes(free)
    assert batching.predicted_peak_bytes(budget, 0) <= free
    # bf16 autocast's weight copies come out of the budget.
    assert batching.budget_from_free_bytes(free, cast_bytes=2 * 2**30) < budget


def test_planning_budget_uses_the_configured_value_else_the_cpu_default():
    assert batching.planning_budget(12.5, "auto") == 12.5
    assert batching.planning_budget(None, "cpu") == batching.CPU_BATCH_SECONDS


def test_stage_batches_by_seconds():
    stage = AsrStage(AsrConfig(model="x.nemo", batch_s=20.0))
    records = [{"audio_filepath": f"/a/{i}.wav", "duration": d} for i, d in enumerate([8, 8, 8, 3, 15, 2, 1])]
    batches = stage.batches(records)
    assert sorted(i for b in batches for i in b) == list(range(7))
    assert all(sum(records[i]["duration"] for i in b) <= 20.0 for b in batches)
    assert len(batches) == 3  # 45 s of audio cannot fit in two batches of 20 s
