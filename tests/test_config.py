import argparse
from dataclasses import dataclass

import pytest

from amela import config as cfg
from amela.errors import ConfigError


@dataclass(frozen=True)
class Demo:
    threshold: float = cfg.option(0.5, "decision threshold")
    hop_size: int = cfg.option(256, "samples per hop", choices=(160, 256))
    name: str | None = cfg.option(None, "a name")
    keys: tuple[str, ...] = cfg.option((), "some keys")
    verbose: bool = cfg.option(False, "talk more")


def test_unknown_key_lists_the_valid_ones():
    with pytest.raises(ConfigError) as err:
        cfg.from_dict(Demo, {"treshold": 0.3}, "my.yaml")
    assert "treshold" in str(err.value) and "threshold" in str(err.value) and "hop_size" in str(err.value)
    assert str(err.value).startswith("my.yaml")


@pytest.mark.parametrize("data, message", [
    ({"hop_size": 100}, "must be one of 160, 256"),
    ({"hop_size": 1.5}, "expected an integer"),
    ({"threshold": "high"}, "expected a number"),
    ({"verbose": "maybe"}, "expected true/false"),
    ({"threshold": None}, "may not be null"),
])
def test_bad_values_are_errors(data, message):
    with pytest.raises(ConfigError, match=message):
        cfg.from_dict(Demo, data)


def test_coercion_from_strings_and_yaml_floats():
    obj = cfg.from_dict(Demo, {"hop_size": 160.0, "threshold": "0.7", "keys": "a,b", "verbose": "yes"})
    assert obj == Demo(threshold=0.7, hop_size=160, keys=("a", "b"), verbose=True)


def test_flags_override_yaml(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("threshold: 0.2\nhop_size: 160\n")
    parser = argparse.ArgumentParser()
    cfg.add_arguments(parser, Demo)
    args = parser.parse_args(["--threshold", "0.9", "--verbose"])
    obj = cfg.from_dict(Demo, {**cfg.load_yaml(str(path)), **cfg.pick(args, Demo)})
    assert (obj.threshold, obj.hop_size, obj.verbose) == (0.9, 160, True)


def test_invalid_yaml_names_the_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("a: [1, 2\n")
    with pytest.raises(ConfigError, match="c.yaml: invalid YAML"):
        cfg.load_yaml(str(path))
