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
from ..runtime import CACHE_ENV

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


def missing_line(name: str, looked_in: str, cache_dir: str | None) -> str:
    """The one line a task prints for a model that is not cached: where it looked and the command that fixes it."""
    hub_cache, _ = cache_dirs(cache_dir)
    env = f" with {CACHE_ENV}={os.path.dirname(hub_cache)}" if hub_cache else ""
    return (f"model {name!r} is not in the cache (looked in {looked_in}); tasks run offline: on a login node "
            f"run `amela fetch-models asr {name}`{env}")


def ngc_cache_file(name: str, cache_dir: str | None = None) -> str:
    """Where NeMo's from_pretrained keeps NGC model `name`: <NeMo cache>/<file stem>/<md5 of location + description>/
    <file>.nemo, as nemo.core.classes.common lays it out; computed from NeMo's own model list, without network."""
    import hashlib
    from pathlib import PurePosixPath

    _, nemo_cache = cache_dirs(cache_dir)
    if nemo_cache:
        os.environ["NEMO_CACHE_DIR"] = nemo_cache  # NeMo reads it on every lookup
    from nemo.collections.asr.models import ASRModel
    from nemo.utils.data_utils import resolve_cache_dir

    for info in ASRModel.list_available_models() or []:
        if name == info.pretrained_model_name or name in (info.aliases or ()):
            filename = PurePosixPath(info.location).name
            subfolder = hashlib.md5((info.location + info.description).encode("utf-8")).hexdigest()
            return str(resolve_cache_dir() / filename[:-len(".nemo")] / subfolder / filename)
    raise ConfigError(f"asr: {name!r} is neither a file, a directory, a Hugging Face name (org/name) nor an NGC "
                      f"model NeMo knows (e.g. stt_en_fastconformer_ctc_large)")


def local_snapshot(name: str, cache_dir: str | None = None) -> str:
    """The cached snapshot directory of Hugging Face repo `name`, without touching the network."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    hub_cache, _ = cache_dirs(cache_dir)
    try:
        return snapshot_download(repo_id=name, cache_dir=hub_cache, local_files_only=True)
    except (LocalEntryNotFoundError, FileNotFoundError, OSError) as exc:
        from huggingface_hub.constants import HF_HUB_CACHE

        where = os.path.join(hub_cache or HF_HUB_CACHE, "models--" + name.replace("/", "--"))
        raise StageUnavailableError(missing_line(name, where, cache_dir)) from exc


def resolve(model: str, cache_dir: str | None = None) -> tuple[str, str]:
    """('nemo', path to a .nemo file) | ('salm', checkpoint directory), offline: a Hugging Face name (org/name) from
    its cached snapshot, an NGC name (no '/') from NeMo's cache; an uncached name raises with the fetch command."""
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
        cached = ngc_cache_file(model, cache_dir)
        if not os.path.isfile(cached):
            raise StageUnavailableError(missing_line(model, cached, cache_dir))
        return "nemo", cached  # restored from NeMo's cache directly: nothing NeMo could try to download
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

    return ASRModel.restore_from(target, map_location=device).eval()


def locate(name: str, cache_dir: str | None = None) -> tuple[str | None, str]:
    """(the cached model, or None; where it is or would be), without network."""
    if name.endswith(".nemo") or os.path.exists(name):
        path = os.path.abspath(os.path.expanduser(name))
        return (path if os.path.exists(path) else None), path
    if "/" not in name:
        path = ngc_cache_file(name, cache_dir)
        return (path if os.path.isfile(path) else None), path
    try:
        return resolve(name, cache_dir)[1], local_snapshot(name, cache_dir)
    except StageUnavailableError:
        from huggingface_hub.constants import HF_HUB_CACHE

        hub_cache, _ = cache_dirs(cache_dir)
        return None, os.path.join(hub_cache or HF_HUB_CACHE, "models--" + name.replace("/", "--"))


def cache_report(names: list[str], cache_dir: str | None = None) -> tuple[list[str], int]:
    """Lines saying what is cached where (every cached model when `names` is empty), and how many names are missing."""
    from huggingface_hub.constants import HF_HUB_CACHE
    from nemo.utils.data_utils import resolve_cache_dir

    hub_cache, nemo_cache = cache_dirs(cache_dir)
    if nemo_cache:
        os.environ["NEMO_CACHE_DIR"] = nemo_cache
    hub_root = hub_cache or HF_HUB_CACHE
    lines = [f"caches: Hugging Face {hub_root}; NeMo (NGC names) {resolve_cache_dir()}"
             + (f" (from {CACHE_ENV})" if hub_cache and not cache_dir else "")]
    if not names:
        names = sorted(d[len("models--"):].replace("--", "/") for d in _listdir(hub_root) if d.startswith("models--"))
        names += sorted(d for d in _listdir(str(resolve_cache_dir()))
                        if glob.glob(os.path.join(str(resolve_cache_dir()), d, "*", "*.nemo")))
    missing = 0
    for name in names:
        try:
            found, where = locate(name, cache_dir)
        except (ConfigError, StageUnavailableError) as exc:
            found, where = None, str(exc)
        if found:
            size = sum(os.path.getsize(f) for f in glob.glob(os.path.join(found, "**"), recursive=True)
                       if os.path.isfile(f)) if os.path.isdir(found) else os.path.getsize(found)
            lines.append(f"cached   {name}  {found}  ({size / 1e9:.2f} GB)")
        else:
            missing += 1
            lines.append(f"missing  {name}  (would be {where}): amela fetch-models asr {name}")
    return lines, missing


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except OSError:
        return []


def fetch_models(names: list[str], cache_dir: str | None = None) -> list[str]:
    """Download each model into the cache (before submission); returns the local paths. A model already cached is
    not fetched again (no network is touched for it). Needs the network for the others."""
    import logging

    if not names:
        raise ConfigError("fetch-models asr: name the models to fetch (or pass --check to list the cache)")
    hub_cache, nemo_cache = cache_dirs(cache_dir)
    paths = []
    for name in names:
        if name.endswith(".nemo") or os.path.exists(name):
            paths.append(os.path.abspath(name))  # already local: nothing to fetch
            continue
        try:
            found, _ = locate(name, cache_dir)
        except ConfigError:
            found = None
        if found:
            logging.getLogger("amela.asr").info("%s: already cached at %s", name, found)
            paths.append(found)
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
