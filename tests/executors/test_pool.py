"""The pool on its own: in-process mode, setup failures, and the worker's bisection of a raising batch."""
import pytest

from amela.executors.pool import StageSetupError, make_pool
from amela.executors.worker import Failure, WorkerSpec, process_isolated
from amela.stage import Output
from tests.support.stages import EchoConfig, EchoStage

STAGE = "tests.support.stages:EchoStage"


def records(n):
    return [{"audio_filepath": f"/x/a{i}.wav", "duration": 1.0} for i in range(n)]


class RaisingStage(EchoStage):
    """process() raises for the whole batch when it contains a poisoned item (as NeMo does for one bad file)."""

    def process(self, batch):
        if any(r["audio_filepath"].endswith("a3.wav") for r in batch):
            raise ValueError("one bad file aborts the whole call")
        return super().process(batch)


def test_bisection_isolates_the_item_that_makes_a_batch_raise():
    stage = RaisingStage(EchoConfig())
    stage.setup()
    outcomes = process_isolated(stage, records(8))
    assert [type(o) for o in outcomes] == [Output] * 3 + [Failure] + [Output] * 4
    assert outcomes[3].error_type == "ValueError" and "aborts the whole call" in outcomes[3].message


@pytest.mark.parametrize("workers", [0, 2])
def test_every_index_comes_back_once(workers):
    recs = records(11)
    work = [([i, i + 1], recs[i:i + 2]) for i in range(0, 10, 2)] + [([10], recs[10:])]
    with make_pool(WorkerSpec(STAGE, {"fail_on": ["a4.wav"]}), workers) as pool:
        got = dict(pool.run(work))
    assert sorted(got) == list(range(11))
    assert isinstance(got[4], Failure) and all(isinstance(got[i], Output) for i in range(11) if i != 4)


def test_setup_failure_stops_with_the_stage_message():
    with pytest.raises(StageSetupError, match="unknown option"):
        with make_pool(WorkerSpec(STAGE, {"no_such_option": 1}), 1):
            pass


def test_few_large_batches_are_spread_over_the_workers():
    from amela.runner.shard import spread

    batches = [list(range(16)), list(range(16, 20))]
    out = spread(batches, workers=2)
    assert len(out) >= 8 or all(len(b) == 1 for b in out)
    assert [i for b in out for i in b] == list(range(20))  # same items, same order, none lost
    assert [len(b) for b in spread(batches, workers=1)] == [4, 4, 8, 4]  # the largest is halved first
    assert spread([[0], [1]], workers=4) == [[0], [1]]  # nothing left to split


def test_every_worker_gets_work_before_any_gets_a_second_batch():
    import os

    recs = records(4)
    work = [([i], recs[i:i + 1]) for i in range(4)]
    with make_pool(WorkerSpec(STAGE, {"sleep_s": 0.3}), 2) as pool:
        pids = {pool.workers[0].proc.pid, pool.workers[1].proc.pid}
        got = dict(pool.run(work))
        served = set(pool.worker_stats)
    assert sorted(got) == [0, 1, 2, 3]
    assert served == pids  # both workers processed batches
    assert os.getpid() not in served
