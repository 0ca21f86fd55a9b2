"""Options renamed to the `_s` suffix keep their old `_seconds` names for one release: as YAML/config keys and as
flags, each time with a warning naming the new name; pipeline fingerprints do not change with the rename."""
from __future__ import annotations

import logging
import re
import types

import pytest

from amela import config as cfg
from amela.asr.config import AsrConfig
from amela.cli import build_parser
from amela.errors import ConfigError
from amela.pipeline.fingerprint import HashCache, step_fingerprint
from amela.runner.plan import RunOptions
from amela.s2s.config import S2SConfig

RENAMED = {AsrConfig: {"batch_seconds": "batch_s", "max_seconds": "max_s", "cut_search_seconds": "cut_search_s"},
           S2SConfig: {"batch_seconds": "batch_s", "chunk_seconds": "chunk_s"}}
VALUES = {"batch_seconds": 12.0, "max_seconds": 30.0, "cut_search_seconds": 4.0, "chunk_seconds": 50.0}


@pytest.fixture
def warned():
    """Messages of the amela.config logger (whatever handlers or propagation other tests left on `amela`)."""
    messages: list[str] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: messages.append(record.getMessage())
    logger = logging.getLogger("amela.config")
    logger.addHandler(handler)
    yield messages
    logger.removeHandler(handler)


@pytest.mark.parametrize("cls", [AsrConfig, S2SConfig])
def test_old_keys_still_work_with_a_warning_naming_the_new_one(cls, warned):
    base = {"model": "m.nemo"} if cls is AsrConfig else {}
    old = {k: VALUES[k] for k in RENAMED[cls]}
    obj = cfg.from_dict(cls, {**base, **old}, "old.yaml")
    for old_name, new_name in RENAMED[cls].items():
        assert getattr(obj, new_name) == VALUES[old_name]
        assert f"old.yaml: option {old_name} is deprecated, use {new_name} (the old name goes in the next release)" \
            in warned
    assert cfg.to_dict(obj) == cfg.to_dict(cfg.from_dict(cls, {**base, **{RENAMED[cls][k]: v for k, v in old.items()}}))
    assert not set(RENAMED[cls]) & set(cfg.to_dict(obj))  # config.yaml is written with the new names


def test_new_name_wins_when_both_are_given_and_old_values_are_still_checked(warned):
    assert cfg.from_dict(AsrConfig, {"model": "m", "batch_seconds": 12, "batch_s": 20}, "x.yaml").batch_s == 20.0
    assert "x.yaml: batch_seconds is a deprecated name of batch_s, which is given too: batch_seconds=12 is ignored" \
        in warned
    with pytest.raises(ConfigError, match="batch_s must be > 0"):
        cfg.from_dict(AsrConfig, {"model": "m", "batch_seconds": 0})
    with pytest.raises(ConfigError, match="unknown option.*batch_secs"):  # only the declared old names
        cfg.from_dict(AsrConfig, {"model": "m", "batch_secs": 3})


@pytest.mark.parametrize("stage, cls", [("asr", AsrConfig), ("s2s", S2SConfig)])
def test_old_flags_still_work_with_a_warning_and_stay_out_of_help(stage, cls, capsys):
    parser = build_parser(stage)
    old_flags = [a for k in RENAMED[cls] for a in (cfg.flag_name(k), str(VALUES[k]))]
    args = parser.parse_args(["run", stage, "in.jsonl", "-o", "run", *old_flags])
    assert cfg.pick(args, cls) == {new: str(VALUES[old]) for old, new in RENAMED[cls].items()}
    err = capsys.readouterr().err
    for old, new in RENAMED[cls].items():
        assert f"amela: warning: {cfg.flag_name(old)} is deprecated, use {cfg.flag_name(new)}" in err
    with pytest.raises(SystemExit):
        parser.parse_args(["run", stage, "--help"])
    help_text = " ".join(re.sub(r"-\n\s*", "-", capsys.readouterr().out).split())  # argparse wraps at hyphens
    for old, new in RENAMED[cls].items():
        assert f"{cfg.flag_name(new)} {new.upper()}" in help_text
        assert f"formerly {cfg.flag_name(old)} (deprecated)" in help_text
        assert f"{cfg.flag_name(old)} {new.upper()}" not in help_text  # not offered as a flag of its own


def test_pipeline_fingerprints_do_not_change_with_the_rename(tmp_path):
    step = types.SimpleNamespace(stage="asr", options=AsrConfig(model="m.nemo", batch_s=8.0, max_s=30.0),
                                 run=RunOptions(), where=None)
    digest, parts = step_fingerprint(step, "input-fp", HashCache(None))
    assert parts["options"]["batch_seconds"] == 8.0 and parts["options"]["max_seconds"] == 30.0
    assert "batch_s" not in parts["options"] and parts["options"]["model"] == "m.nemo"
    renamed = types.SimpleNamespace(**{**vars(step), "options": cfg.from_dict(
        AsrConfig, {"model": "m.nemo", "batch_seconds": 8.0, "max_seconds": 30.0})})
    assert step_fingerprint(renamed, "input-fp", HashCache(None))[0] == digest
