"""Finding and loading ASR models: .nemo files, SALM checkpoint directories and pretrained names from a local cache.

Pretrained names are fetched once, before submission (`amela fetch-models asr NAME`), into a cache; tasks then
load them with `local_files_only`, so 1,000 array tasks never download at once and a task never hangs on the network.
Cache: $AMELA_CACHE (hf/ for Hugging Face repos, nemo/ for NGC names) or, unset, the Hugging Face / NeMo defaults.
"""
from __future__ import annotations

import glob
import json
import os
from pathlib import Path

from ..errors import ConfigError, StageUnavailableError

CACHE_ENV = "AMELA_CACHE"
# Small files of an LLM repo that a SALM needs besides its own checkpoint (config + tokenizer, no weights).
LLM_CONFIG_PATTERNS = ["*.json", "*.txt", "*.model", "*.tiktoken", "merges*", "vocab*", "tokenizer*"]


def cache_dirs(cache_dir: str | None = None) -> tuple[str | None, str | None]:
    """(Hugging Face hub cache, NeMo NGC cache) under `cache_dir` or $AMELA_CACHE; (None, None): library defaults."""
    root = cache_dir or os.environ.get(CACHE_ENV)
    if not root:
        return None, None
    root = os.path.abspath(os.path.expanduser(root))
    return os.path.join(root, "hf"), os.path.join(root, "nemo")


def _is_salm_dir(path: str) -> bool:
    config = os.path.join(path, "config.json")
    if not os.path.isfile(config):
        return False
    try:
        with open(config, encoding="utf-8") as fh:
            cfg = json.load(fh)
    except (OSError, ValueError):
        return False
    return "pretrained_llm" in cfg or "perception" in cfg


def _nemo_in(directory: str) -> str | None:
    found = sorted(glob.glob(os.path.join(directory, "*.nemo")))
    return found[0] if found else None


def local_snapshot(name: str, cache_dir: str | None = None) -> str:
    """The cached snapshot directory of Hugging Face repo `name`, without touching the network."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    hub_cache, _ = cache_dirs(cache_dir)
    try:
        return snapshot_download(repo_id=name, cache_dir=hub_cache, local_files_only=True)
    except (LocalEntryNotFoundError, FileNotFoundError, OSError) as exc:
        where = hub_cache or "the Hugging Face cache (HF_HOME)"
        raise StageUnavailableError(
            f"model {name!r} is not in {where}; fetch it before running (tasks run offline): "
            f"amela fetch-models asr {name}"
            + (f" (with {CACHE_ENV}={os.path.dirname(hub_cache)})" if hub_cache else "")
            + f" [{type(exc).__name__}]") from exc


def resolve(model: str, cache_dir: str | None = None) -> tuple[str, str]:
    """('nemo', path to a .nemo file) | ('salm', checkpoint directory) | ('ngc', name), offline."""
    if model.endswith(".nemo") or os.sep in model and os.path.exists(model):
        path = os.path.abspath(os.path.expanduser(model))
        if os.path.isdir(path):
            nemo = _nemo_in(path)
            if nemo:
                return "nemo", nemo
            if _is_salm_dir(path):
                return "salm", path
            raise ConfigError(f"asr: {path} holds neither a .nemo file nor a SALM config.json")
        if not os.path.isfile(path):
            raise ConfigError(f"asr: model file {path} does not exist")
        return "nemo", path
    if os.path.isdir(model):  # a relative directory
        return resolve(os.path.abspath(model), cache_dir)
    if "/" not in model:
        return "ngc", model
    snapshot = local_snapshot(model, cache_dir)
    nemo = _nemo_in(snapshot)
    if nemo:
        return "nemo", nemo
    if _is_salm_dir(snapshot):
        return "salm", snapshot
    raise StageUnavailableError(f"model {model!r}: cached snapshot {snapshot} has neither a .nemo file nor a SALM "
                                "config.json; refetch it with amela fetch-models")


def offline_env(cache_dir: str | None = None) -> dict[str, str]:
    """Environment for loading from the cache only (set in workers before NeMo/transformers look anything up)."""
    hub_cache, nemo_cache = cache_dirs(cache_dir)
    env = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    if hub_cache:
        env["HF_HUB_CACHE"] = hub_cache
    if nemo_cache:
        env["NEMO_CACHE_DIR"] = nemo_cache
    return env


def load_asr_model(model: str, device: str, cache_dir: str | None = None):
    """A NeMo ASRModel (eval mode, on `device`) or a SALM, from a .nemo path, a directory or a cached name."""
    os.environ.update(offline_env(cache_dir))  # before any hub library reads its settings
    source, target = resolve(model, cache_dir)
    if source == "salm":
        from .salm import load_salm

        return load_salm(target, device)
    from nemo.collections.asr.models import ASRModel

    if source == "nemo":
        loaded = ASRModel.restore_from(target, map_location=device)
    else:
        try:
            loaded = ASRModel.from_pretrained(target, map_location=device)
        except Exception as exc:  # NeMo raises bare Exceptions / network errors for an uncached NGC name
            raise StageUnavailableError(
                f"NGC model {target!r} could not be loaded offline ({type(exc).__name__}: {exc}); "
                f"fetch it first: amela fetch-models asr {target}") from exc
    return loaded.eval()


def fetch_models(names: list[str], cache_dir: str | None = None) -> list[str]:
    """Download each model into the cache (before submission); returns the local paths. Needs the network."""
    hub_cache, nemo_cache = cache_dirs(cache_dir)
    paths = []
    for name in names:
        if name.endswith(".nemo") or os.path.exists(name):
            paths.append(os.path.abspath(name))  # already local: nothing to fetch
        elif "/" in name:
            paths.append(_fetch_hf(name, hub_cache))
        else:
            paths.append(_fetch_ngc(name, nemo_cache))
    return paths


def _fetch_hf(name: str, hub_cache: str | None) -> str:
    from huggingface_hub import snapshot_download

    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        raise StageUnavailableError(f"cannot fetch {name!r}: HF_HUB_OFFLINE is set; unset it on a host with network")
    try:
        path = snapshot_download(repo_id=name, cache_dir=hub_cache)
    except Exception as exc:  # network, auth, missing repo: one clear line
        raise StageUnavailableError(f"cannot fetch {name!r}: {type(exc).__name__}: {exc}") from exc
    if _is_salm_dir(path) and not os.path.isdir(os.path.join(path, "llm_backbone")):
        _fetch_llm_config(path, hub_cache)
    return path


def _fetch_llm_config(snapshot: str, hub_cache: str | None) -> None:
    """A SALM without a bundled llm_backbone/ builds its LLM from the base repo's config + tokenizer: fetch those."""
    from huggingface_hub import snapshot_download

    with open(os.path.join(snapshot, "config.json"), encoding="utf-8") as fh:
        llm = json.load(fh).get("pretrained_llm")
    if llm and not os.path.exists(llm):
        snapshot_download(repo_id=llm, cache_dir=hub_cache, allow_patterns=LLM_CONFIG_PATTERNS)


def _fetch_ngc(name: str, nemo_cache: str | None) -> str:
    if nemo_cache:
        os.environ["NEMO_CACHE_DIR"] = nemo_cache
        Path(nemo_cache).mkdir(parents=True, exist_ok=True)
    from nemo.collections.asr.models import ASRModel

    try:
        return str(ASRModel.from_pretrained(name, return_model_file=True))
    except Exception as exc:  # NeMo raises bare Exceptions for unknown names
        raise StageUnavailableError(f"cannot fetch NGC model {name!r}: {type(exc).__name__}: {exc}") from exc
