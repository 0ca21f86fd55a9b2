"""The pool on its own: in-process mode, setup failures, and the worker's bisection of a raising batch."""
import pytest

from amela.executors.pool import StageSetupError, make_pool
from amela.executors.worker import Failure, WorkerSpec, process_isolated
from amela.stage import Output

from .stages import EchoConfig, EchoStage

STAGE = "tests.core.stages:EchoStage"


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
