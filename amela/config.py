"""Strict configuration: frozen dataclasses, loaded from YAML and overridden by command-line flags.

Every option is a dataclass field whose metadata carries its help text, so the CLI flags, the YAML keys and the saved
config.yaml are generated from one definition. An unknown key is an error that lists the valid ones: a typo must
fail loudly, not be swallowed.
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import types
import typing
from typing import Any

from .errors import ConfigError

logger = logging.getLogger("amela.config")


def option(default: Any = dataclasses.MISSING, help: str = "", choices: tuple | None = None, const: Any = None,
           old_names: tuple[str, ...] = (), **kw):
    """A config field with its help text (and optional choices) for the generated CLI flag. With `const`, the flag
    may be given without a value, which then means `const` (e.g. `--save-probs` alone is `--save-probs uint8`).
    `old_names`: names the option had before a rename, still accepted (YAML key and flag) for one release, with a
    warning naming the new one."""
    meta = {"help": help, "choices": choices, "const": const, "old_names": tuple(old_names)}
    if isinstance(default, (list, dict, set)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=meta, **kw)
    return dataclasses.field(default=default, metadata=meta, **kw)


def _hints(cls) -> dict:
    return typing.get_type_hints(cls)


def _strip_optional(tp):
    """(inner type, allows None) for `X | None` / Optional[X]."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def _coerce(value, tp, where: str):
    inner, nullable = _strip_optional(tp)
    if value is None:
        if nullable:
            return None
        raise ConfigError(f"{where}: may not be null")
    origin = typing.get_origin(inner)
    if origin in (list, tuple):
        if isinstance(value, str):
            value = [v for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        args = typing.get_args(inner)
        item_tp = args[0] if args else str
        items = [_coerce(v, item_tp, where) for v in value]
        return tuple(items) if origin is tuple else items
    if inner is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "1", "false", "no", "0"):
            return value.lower() in ("true", "yes", "1")
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    if inner is int:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or isinstance(value, float):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected an integer, got {value!r}") from None
    if inner is float:
        if isinstance(value, bool):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected a number, got {value!r}") from None
    if inner is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return str(value)
    return value


def from_dict(cls, data: dict | None, source: str = "config"):
    """Build `cls` from a mapping; unknown keys and wrong types are ConfigErrors naming the key and the source."""
    data = _renamed(cls, dict(data or {}), source)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"{source}: unknown option(s) {', '.join(unknown)} for {cls.__name__}; valid: {', '.join(sorted(fields))}"
        )
    hints = _hints(cls)
    kwargs = {}
    for name, value in data.items():
        value = _coerce(value, hints[name], f"{source}: {name}")
        choices = fields[name].metadata.get("choices")
        if choices and value not in choices:
            raise ConfigError(f"{source}: {name} must be one of {', '.join(map(str, choices))}, got {value!r}")
        kwargs[name] = value
    missing = [n for n, f in fields.items() if n not in kwargs and _required(f)]
    if missing:
        raise ConfigError(f"{source}: missing required option(s): {', '.join(missing)}")
    try:
        obj = cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{source}: {exc}") from exc
    check = getattr(obj, "check", None)
    if check is not None:
        check()
    return obj


def _renamed(cls, data: dict, source: str) -> dict:
    """`data` with deprecated option names replaced by the current ones (a warning each); the current name wins."""
    for f in dataclasses.fields(cls):
        for old in f.metadata.get("old_names", ()):
            if old not in data:
                continue
            value = data.pop(old)
            if f.name in data:
                logger.warning("%s: %s is a deprecated name of %s, which is given too: %s=%r is ignored", source, old,
                               f.name, old, value)
            else:
                logger.warning("%s: option %s is deprecated, use %s (the old name goes in the next release)", source,
                               old, f.name)
                data[f.name] = value
    return data


def _required(f: dataclasses.Field) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


def to_dict(obj, old_names: bool = False) -> dict:
    """The options as a plain mapping. `old_names`: each renamed option under its first old name, for hashes that
    must not change with a rename (pipeline fingerprints: a renamed option would otherwise rerun finished steps)."""
    out = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        key = f.metadata.get("old_names", ())[:1] if old_names else ()
        out[key[0] if key else f.name] = list(value) if isinstance(value, tuple) else value
    return out


def load_yaml(path: str) -> dict:
    import yaml

    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of options, got {type(data).__name__}")
    return data


def dump_yaml(data: dict) -> str:
    import yaml

    return yaml.safe_dump(data, sort_keys=False, default_flow_style=None)


def flag_name(field_name: str) -> str:
    return "--" + field_name.replace("_", "-")


def add_arguments(parser: argparse.ArgumentParser, cls, title: str | None = None) -> None:
    """One flag per field. Defaults are suppressed so only flags the user typed override the YAML."""
    group = parser.add_argument_group(title or f"{cls.__name__} options")
    hints = _hints(cls)
    for f in dataclasses.fields(cls):
        inner, _ = _strip_optional(hints[f.name])
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
        help_text = f.metadata.get("help", "")
        help_text = f"{help_text} (default: {default})" if help_text else f"(default: {default})"
        old = f.metadata.get("old_names", ())
        if old:
            help_text += f"; formerly {', '.join(map(flag_name, old))} (deprecated)"
        kw: dict = {"dest": f.name, "default": argparse.SUPPRESS, "help": help_text}
        if f.metadata.get("choices"):
            kw["choices"] = f.metadata["choices"]
            kw["type"] = type(f.metadata["choices"][0])  # `--hop-size 160` is the int 160, one of (160, 256)
        if f.metadata.get("const") is not None:
            kw["nargs"], kw["const"] = "?", f.metadata["const"]
        if inner is bool:
            kw["action"] = argparse.BooleanOptionalAction
        else:
            kw["metavar"] = f.name.upper()
        group.add_argument(flag_name(f.name), **kw)
        for name in old:  # hidden: the old flag still works for one release, and says what to type instead
            group.add_argument(flag_name(name), **{**kw, "help": argparse.SUPPRESS, "action": _OldFlag})


class _OldFlag(argparse.Action):
    """A deprecated flag: sets the option under its current name and warns."""

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"amela: warning: {option_string} is deprecated, use {flag_name(self.dest)} (the old name goes in the "
              "next release)", file=sys.stderr)
        setattr(namespace, self.dest, values)


def pick(namespace: argparse.Namespace, cls) -> dict:
    """The flags of `cls` the user actually typed."""
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in vars(namespace).items() if k in names}
