"""The stage contract's helpers: the default process() over process_one(), the counters API, streams declared once,
and fetch-models finding the stages that have models through the registry."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from amela.cli import main
from amela.config import option
from amela.errors import ItemError
from amela.runner.shard import merge_worker_stats
from amela.stage import REGISTRY, Output, Stage, load_stage
from tests.support.stages import EchoConfig, EchoStage


@dataclass(frozen=True)
class OneConfig:
    extra: bool = option(False, "write the 'extra' stream")


class OneStage(Stage):
    name = "one"
    config_cls = OneConfig
    streams = {"extra": "extra", "always": None}
    models_module = "tests.test_stage_helpers"  # this module plays the models module below

    def process_one(self, record):
        if record["n"] == 2:
            raise ItemError(f"item {record['n']}: bad")
        if record["n"] == 5:
            raise RuntimeError("a bug, not the item's fault")
        self.stat_update("items")
        self.stat_update("audio_s", 0.25)
        self.stat_update("longest_s_max", record["n"])
        self.stat_update("budget_s_min", 10 - record["n"])
        self.stat_update("last_n_last", record["n"])
        return {**record, "done": True}


def fetch_models(names, cache_dir=None):
    return [f"{cache_dir}/{n}" for n in names]


def cache_report(names, cache_dir=None):
    return [f"cached {n}" for n in names], 0


def test_default_process_calls_process_one_and_turns_item_errors_into_failures():
    stage = OneStage(OneConfig())
    out = stage.process([{"n": n} for n in range(4)])
    assert [type(o) for o in out] == [dict, dict, ItemError, dict]
    assert str(out[2]) == "item 2: bad" and out[3] == {"n": 3, "done": True}
    with pytest.raises(RuntimeError, match="a bug"):  # the worker bisects such a batch; the item fails alone
        stage.process([{"n": 5}])


def test_counters_sum_or_keep_extremes_and_merge_like_before():
    stage = OneStage(OneConfig())
    stage.process([{"n": n} for n in (0, 3, 1)])
    stats = stage.stats()
    assert (stats["items"], stats["audio_s"], stats["longest_s_max"], stats["budget_s_min"]) == (3, 0.75, 3, 7)
    assert stats["last_n_last"] == 1
    assert stats["cpu_s"] >= 0 and stats["peak_rss_mb_max"] > 0  # every stage: CPU time of process(), peak memory
    merged = merge_worker_stats({1: stats, 2: {**stats, "longest_s_max": 9, "budget_s_min": 2}})
    assert (merged["items"], merged["longest_s_max"], merged["budget_s_min"]) == (6, 9, 2)


def test_timer_adds_the_seconds_of_a_block():
    stage = OneStage(OneConfig())
    clock = iter([10.0, 10.5, 20.0, 21.25])
    for _ in range(2):
        with stage.timer("wait_s", lambda: next(clock)):
            pass
    assert stage.stats()["wait_s"] == 1.75
    with pytest.raises(ValueError), stage.timer("fail_s", time.perf_counter):
        raise ValueError("counted all the same")
    assert "fail_s" in stage.stats()


def test_streams_are_declared_once_with_the_option_that_turns_each_on():
    assert OneStage(OneConfig()).output_streams() == ("always",)
    assert OneStage(OneConfig(extra=True)).output_streams() == ("extra", "always")
    assert EchoStage(EchoConfig()).output_streams() == ()
    assert EchoStage(EchoConfig(pieces=2)).output_streams() == ("pieces",)
    vad = load_stage("vad")
    assert vad(vad.config_cls(segments=True, pack_to_s=30.0, save_probs="uint8")).output_streams() == \
        ("segments", "packed")
    assert vad(vad.config_cls(save_probs="uint8")).output_blobs() == ("probs",)
    assert vad(vad.config_cls()).output_streams() == () and vad(vad.config_cls()).output_blobs() == ()


def test_echo_stage_is_process_one_only():
    stage = EchoStage(EchoConfig(fail_on=("b.wav",), pieces=1))
    stage.setup()
    out = stage.process([{"audio_filepath": "/x/a.wav"}, {"audio_filepath": "/x/b.wav"}])
    assert isinstance(out[0], Output) and out[0].record["echo"] == "A.WAV" and isinstance(out[1], ItemError)
    assert stage.stats()["items_processed"] == 1 and stage.stats()["setups"] == 1


def test_fetch_models_finds_stages_with_models_in_the_registry(capsys):
    with_models = sorted(n for n in REGISTRY if load_stage(n).models_module)
    assert with_models == ["asr", "s2s"]
    with pytest.raises(SystemExit) as exc:
        main(["fetch-models", "vad"])
    assert exc.value.code == 2
    assert "stage 'vad' has no models to fetch; stages with models: asr, s2s" in capsys.readouterr().err
    # Any stage class that names a models module is served, registry or module:Class.
    assert main(["fetch-models", f"{__name__}:OneStage", "m1", "m2", "--cache-dir", "/c"]) == 0
    assert capsys.readouterr().out.split() == ["/c/m1", "/c/m2"]
    assert main(["fetch-models", f"{__name__}:OneStage", "m1", "--check"]) == 0
    assert "cached m1" in capsys.readouterr().out


def test_fetch_models_asr_without_names_says_what_to_do(capsys):
    assert main(["fetch-models", "asr"]) == 2
    assert "name the models to fetch (or pass --check" in capsys.readouterr().err


def test_a_stage_without_process_one_says_so():
    class Bare(Stage):
        name = "bare"
        config_cls = OneConfig

    with pytest.raises(NotImplementedError, match="Bare: define process_one"):
        Bare(OneConfig()).process([{"n": 0}])

    class OwnInit(OneStage):
        def __init__(self, config):  # forgets super().__init__: counters work all the same
            self.config = config

    stage = OwnInit(OneConfig())
    assert stage.process([{"n": 1}]) == [{"n": 1, "done": True}] and stage.stats()["items"] == 1


def test_the_stage_in_docs_adding_a_stage_runs_as_written(tmp_path):
    """The example of docs/adding-a-stage.md, copied from the page (its relative imports made absolute), run by the
    real runner with two workers: a stage is a config, a process_one, and nothing else."""
    doc = (Path(__file__).resolve().parents[1] / "docs" / "adding-a-stage.md").read_text()
    config_code, stage_code = re.findall(r"```python\n(.*?)```", doc, re.S)[:2]
    assert "def process_one(self, record: dict)" in stage_code and "class WordsConfig" in config_code
    code = (config_code + stage_code).replace("from ..", "from amela.").replace("from .config import WordsConfig\n", "")
    (tmp_path / "words_example.py").write_text(code)
    rows = [{"audio_filepath": f"/data/a{i}.wav", "duration": 1.0, "text": "one two three"[: 3 + 4 * (i % 3)]}
            for i in range(6)] + [{"audio_filepath": "/data/notext.wav", "duration": 1.0}]
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-m", "amela", "run", "words_example:WordsStage", str(manifest), "-o",
                           str(tmp_path / "run"), "--workers", "2", "--no-progress"], capture_output=True, text=True,
                          env=env, timeout=300)
    assert proc.returncode == 1, proc.stdout + proc.stderr  # one item failed, the rest are done
    assert "6 ok, 1 failed" in proc.stdout
    out = [json.loads(line) for line in (tmp_path / "run" / "words.jsonl").read_text().splitlines()]
    assert [r["words_n"] for r in out] == [len(r["text"].split()) for r in rows[:6]]
    failure = json.loads((tmp_path / "run" / "failures.jsonl").read_text())
    assert failure["audio_filepath"] == "/data/notext.wav" and "no 'text' string to count" in failure["message"]
    stats = json.loads((tmp_path / "run" / "stats.json").read_text())
    worker = stats["per_shard"][0]["stage"]
    assert worker["words"] == sum(r["words_n"] for r in out) and worker["cpu_s"] >= 0
