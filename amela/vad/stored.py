"""A VAD run's stored probabilities, read from the command side (`amela vad probs | resegment | tune`).

Stages never read run directories; these helpers do it for the commands through the runner's blob index.
"""
from __future__ import annotations

import logging
import os

from ..errors import ConfigError
from ..manifest import write_jsonl_atomic
from ..paths import RunPaths
from .resegment import REF_KEY
from .stage import PROBS

logger = logging.getLogger("amela.vad")
INPUT_NAME = "resegment_input.jsonl"
# What a VAD run adds to a record: stripped to get back the record the old run was given.
RESULT_KEYS = ("speech_ratio", "speech_s", "speech_segment_count", "max_speech_s", "min_speech_s", "avg_speech_s",
               "max_nonspeech_s", "min_nonspeech_s", "avg_nonspeech_s", "flagged_ns", "flagged_1m", "speech_segments",
               "split_points")
# Options fixed by the stored probabilities: a new value would need the model again.
FIXED_OPTIONS = ("hop_size", "channel")


def old_run_options(old: RunPaths) -> dict:
    from ..config import to_dict
    from ..runner import load_spec

    spec = load_spec(old)
    if not hasattr(spec.options, "save_probs"):
        raise ConfigError(f"{old.root}: not a VAD run (stage {spec.stage})")
    if not spec.options.save_probs and spec.stage.endswith(":ResegmentStage"):
        raise ConfigError(f"{old.root}: a resegment without probabilities of its own; resegment the run it was made "
                          f"from ({_origin(spec.input)}) instead, with any options")
    if not spec.options.save_probs:
        raise ConfigError(f"{old.root}: its probabilities were not stored; run the VAD with --save-probs "
                          "(e.g. `--save-probs uint8`) to resegment without the model")
    options = to_dict(spec.options)
    options["save_probs"] = None  # the new run refers to the stored probabilities; --save-probs copies them
    return options


def _origin(manifest: str) -> str:
    """The run whose probabilities a resegment input manifest points to."""
    from pathlib import Path

    from ..manifest import iter_jsonl

    for record in iter_jsonl(manifest):
        return str(Path(record[REF_KEY]["file"]).parents[2])
    return "?"


def check_fixed(old_options: dict, new_options) -> None:
    for name in FIXED_OPTIONS:
        if getattr(new_options, name) != old_options[name]:
            raise ConfigError(f"{name} cannot change in a resegment ({old_options[name]!r} in the stored run, "
                              f"{getattr(new_options, name)!r} asked): the probabilities depend on it; "
                              "run the VAD again instead")


def stored_records(old: RunPaths):
    """The old run's output records with their probability references, in input order."""
    import heapq

    from ..runner import shardio
    from ..runner.blobs import iter_index

    entries = {}
    for sp, idx, entry in iter_index(old, PROBS):
        entries[idx] = (sp, entry)
    outputs = (shardio.iter_records(p) for p in sorted(old.shards_dir.glob("*/output.partial")))
    for idx, record in heapq.merge(*outputs, key=lambda t: t[0]):
        found = entries.get(idx)
        if found is None:
            raise ConfigError(f"{old.root}: item {idx} ({record.get('audio_filepath')}) has no stored probabilities")
        sp, entry = found
        source = {k: v for k, v in record.items() if k not in RESULT_KEYS}
        source[REF_KEY] = {"file": str(sp.blob(PROBS)), "pos": entry["pos"], "size": entry["size"],
                           "dtype": entry["dtype"], "duration_s": entry["duration_s"], "offset_s": entry["offset_s"]}
        yield source


def write_input(old: RunPaths, new: RunPaths) -> str:
    """The new run's input manifest (written once: a prepared run keeps the split it has)."""
    from ..runner import run_status

    path = new.root / INPUT_NAME
    if new.plan.exists() and path.exists():
        return str(path)
    st = run_status(old)
    if not st.complete:
        missing = st.indices("failed", "missing", "running")
        logger.warning("%s: %d shard(s) not finished (%s); resegmenting the files of the finished ones",
                       old.root, len(missing), ",".join(map(str, missing)))
    failed = sum(s.failed for s in st.shards)
    if failed:
        logger.warning("%s: %d file(s) failed in that run and have no probabilities; they are not in the new run",
                       old.root, failed)
    new.root.mkdir(parents=True, exist_ok=True)
    n = write_jsonl_atomic(path, stored_records(old))
    if not n:
        raise ConfigError(f"{old.root}: no stored probabilities to resegment")
    return os.path.abspath(path)
