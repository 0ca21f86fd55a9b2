"""Every compatibility shim that lets 2021 fairseq checkpoints run on fairseq 0.12.2 / Python 3.11 / torch >= 2.6.

Call `import_fairseq()` instead of `import fairseq`: it applies the import-time shim first (idempotent). The load-time
shims are functions the model loaders call on the checkpoint they read. Each shim's docstring quotes the error it
fixes, so a reader can map a traceback to its fix.
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import sys
import typing

_PATCH_FLAG = "_amela_fairseq_shim"


# -- shim 1: import fairseq on Python >= 3.11 ------------------------------------------------------------------------
def patch_mutable_dataclass_defaults() -> None:
    """Fixes, at `import fairseq` on Python >= 3.11:

        ValueError: mutable default <class 'fairseq.dataclass.configs.CommonConfig'> for field common is not allowed:
        use default_factory

    Python 3.11 rejects any default whose class is unhashable (3.10 rejected only list/dict/set), and fairseq 0.12.2
    declares nested configs as `common: CommonConfig = CommonConfig()` (or `field(default=QuantNoiseConfig())`).
    We wrap dataclasses' field builder: when a class defined in a fairseq module has such a default whose class is
    itself a fairseq dataclass, that class gets identity hashing (object.__hash__) before the check. The result is
    exactly the Python 3.10 behaviour fairseq was written and tested under (one default instance, found in
    Field.default, which fairseq's hydra_init reads; default_factory would hide it there). Classes of other packages
    are untouched. Idempotent.
    """
    if sys.version_info < (3, 11):
        return
    original = dataclasses._get_field
    if getattr(original, _PATCH_FLAG, False):
        return

    @functools.wraps(original)
    def _get_field(cls, a_name, *args, **kwargs):
        attr = cls.__dict__.get(a_name, dataclasses.MISSING)
        default = attr.default if isinstance(attr, dataclasses.Field) else attr
        kind = type(default)
        if (
            _from_fairseq(cls)
            and _from_fairseq(kind)
            and dataclasses.is_dataclass(kind)
            and kind.__hash__ is None
        ):
            kind.__hash__ = object.__hash__
        return original(cls, a_name, *args, **kwargs)

    setattr(_get_field, _PATCH_FLAG, True)
    dataclasses._get_field = _get_field


def _from_fairseq(cls) -> bool:
    return getattr(cls, "__module__", "").split(".", 1)[0] == "fairseq"


def import_fairseq():
    """`import fairseq` with shim 1 applied first; raises StageUnavailableError with the fix when it still fails."""
    patch_mutable_dataclass_defaults()
    _quiet()
    try:
        import fairseq  # noqa: F401 - the point of this function
        import fairseq.checkpoint_utils  # noqa: F401
        import fairseq.models.hubert  # noqa: F401
        import fairseq.tasks.hubert_pretraining  # noqa: F401
    except ImportError as exc:
        from ..errors import StageUnavailableError

        raise StageUnavailableError(
            f"fairseq cannot be imported ({exc}); install it as scripts/setup.sh does "
            "(fairseq==0.12.2 with --no-deps, plus bitarray, regex, sacrebleu, cffi, scikit-learn)"
        ) from exc
    return sys.modules["fairseq"]


def _quiet() -> None:
    """fairseq logs every model config at INFO, and torch warns that fairseq uses the old weight_norm and
    torch.jit.script: none of it is actionable for a user of AMELA (AMELA_LOG_LEVEL=DEBUG keeps fairseq's INFO)."""
    import logging
    import os
    import warnings

    if os.environ.get("AMELA_LOG_LEVEL", "").upper() != "DEBUG":
        logging.getLogger("fairseq").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=r".*torch\.nn\.utils\.weight_norm.* is deprecated",
                            category=FutureWarning)
    warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.* is deprecated", category=DeprecationWarning)


# -- shim 2: torch >= 2.6 loads with weights_only=True ----------------------------------------------------------------
def checkpoint_globals() -> list:
    """The non-tensor classes a 2021 fairseq checkpoint pickles: the task's Dictionary (task_state) and, in checkpoints
    older than the hydra configs, the argparse Namespace under `args`."""
    import argparse

    from fairseq.data.dictionary import Dictionary

    return [Dictionary, argparse.Namespace]


@contextlib.contextmanager
def fairseq_safe_globals():
    """Fixes, when fairseq's checkpoint_utils calls torch.load under torch >= 2.6:

        _pickle.UnpicklingError: Weights only load failed ... Unsupported global: GLOBAL
        fairseq.data.dictionary.Dictionary was not an allowed global by default.

    A scoped allowlist: these classes are allowed only inside this `with` block (around one checkpoint load), never
    process-wide with add_safe_globals, and weights_only stays True, so a checkpoint still cannot run arbitrary code.
    """
    import torch

    with torch.serialization.safe_globals(checkpoint_globals()):
        yield


def unsafe_globals(path: str) -> list[str] | None:
    """The globals a checkpoint needs beyond the allowlist (for an error message); None when it cannot be parsed."""
    import torch

    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:  # noqa: BLE001 - not a checkpoint torch can even list: the caller says so
        return None
    allowed = {f"{c.__module__}.{c.__qualname__}" for c in checkpoint_globals()}
    return [n for n in names if n not in allowed]


# -- shim 3: integral floats where the running fairseq declares int --------------------------------------------------
def coerce_declared_ints(cfg) -> list[str]:
    """Fixes, when fairseq merges a checkpoint's config into its config dataclasses:

        omegaconf.errors.ValidationError: Value '50.0' of type 'float' could not be converted to Integer
            full_key: label_rate

    (2021 fairseq declared label_rate an int; HuBERT checkpoints stored 50.0.) For the `model` and `task` sections
    and the top-level sections of FairseqConfig, a value that is an integral float becomes an int only where the
    dataclass of the *running* fairseq declares the field int (or Optional[int]); every other value is untouched.
    `cfg` (a dict or DictConfig) is changed in place; returns the changed keys (`section.field`).
    """
    from fairseq.dataclass.configs import FairseqConfig
    from fairseq.models import MODEL_DATACLASS_REGISTRY
    from fairseq.tasks import TASK_DATACLASS_REGISTRY

    changed: list[str] = []
    top = _field_types(FairseqConfig)
    for section in list(cfg.keys()):
        sub = cfg[section]
        if not _is_mapping(sub):
            continue
        if section == "model":
            schema = MODEL_DATACLASS_REGISTRY.get(sub.get("_name"))
        elif section == "task":
            schema = TASK_DATACLASS_REGISTRY.get(sub.get("_name"))
        else:
            schema = top.get(section)
        if dataclasses.is_dataclass(schema):
            _coerce_section(sub, schema, section, changed)
    return changed


def _coerce_section(section, schema, where: str, changed: list[str]) -> None:
    types = _field_types(schema)
    for key in list(section.keys()):
        tp = types.get(key)
        value = section[key]
        if dataclasses.is_dataclass(tp) and _is_mapping(value):
            _coerce_section(value, tp, f"{where}.{key}", changed)
        elif _declares_int(tp) and isinstance(value, float) and value.is_integer():
            section[key] = int(value)
            changed.append(f"{where}.{key}")


def _field_types(schema) -> dict:
    try:
        return typing.get_type_hints(schema)
    except Exception:  # noqa: BLE001 - unresolvable annotations: fall back to the raw ones
        return {f.name: f.type for f in dataclasses.fields(schema)}


def _declares_int(tp) -> bool:
    if tp is int:
        return True
    args = typing.get_args(tp)
    return typing.get_origin(tp) is typing.Union and int in args and all(a in (int, type(None)) for a in args)


def _is_mapping(value) -> bool:
    return isinstance(value, dict) or type(value).__name__ == "DictConfig"


# -- shim 4: weight-norm parameter names --------------------------------------------------------------------------
_OLD = ("weight_g", "weight_v")
_NEW = ("parametrizations.weight.original0", "parametrizations.weight.original1")


def remap_weight_norm_keys(state_dict: dict, expected_keys) -> tuple[dict, list[str]]:
    """Fixes loading 2021 checkpoints into a model whose weight norm is a parametrization:

        RuntimeError: Error(s) in loading state_dict for HubertModel: Missing key(s) in state_dict:
        "encoder.pos_conv.0.parametrizations.weight.original0", ... Unexpected key(s): "encoder.pos_conv.0.weight_g"

    The original project deleted those keys and loaded with strict=False, which silently re-initialised pos_conv
    (features then differed by up to ~3.0 where the largest was ~4). Here no key is dropped: old torch weight_norm
    names (`P.weight_g` / `P.weight_v`, magnitude / direction) are renamed to whatever the running model uses for the
    same tensors (`P.parametrizations.weight.original0` / `original1`), or the other way round, and the caller loads
    strictly. Returns the new dict (same tensors, same order) and the renamed keys.
    """
    expected = set(expected_keys)
    out: dict = {}
    renamed: list[str] = []
    for key, tensor in state_dict.items():
        new_key = key
        if key not in expected:
            for src, dst in ((_OLD, _NEW), (_NEW, _OLD)):
                for s, d in zip(src, dst):
                    if key.endswith("." + s) and key[: -len(s)] + d in expected:
                        new_key = key[: -len(s)] + d
        if new_key != key:
            renamed.append(key)
        out[new_key] = tensor
    return out, renamed


# -- shim 5: k-means pickles -----------------------------------------------------------------------------------------
def read_centroids(path: str, trusted: bool):
    """Fixes loading the 2021 k-means quantisers (sklearn MiniBatchKMeans saved by joblib under sklearn 0.24) with
    current sklearn, which fails or warns depending on the versions, e.g.

        ModuleNotFoundError: No module named 'sklearn.cluster.k_means_'
        AttributeError: 'MiniBatchKMeans' object has no attribute '_n_threads'
        InconsistentVersionWarning: Trying to unpickle estimator MiniBatchKMeans from version 0.24.2 ...

    Only the centroids are needed, so sklearn is never imported: a restricted unpickler rebuilds numpy arrays (plain
    pickles and joblib's in-stream array format, object arrays refused) and turns every other class into an inert
    record of its state, from which `cluster_centers_` (K x D) is read. A `.npy` file holding the K x D array is read
    with allow_pickle=False. Even restricted, unpickling is reserved for files that are `trusted` (known sha256 or
    --trust-pickle): the caller decides. Returns a float32 numpy array; raises ValueError naming the file.
    """
    import numpy as np

    if str(path).endswith(".npy"):
        try:
            centroids = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise ValueError(f"{path}: not a readable .npy array of centroids: {exc}") from exc
        return _check_centroids(path, centroids)
    if not trusted:
        raise PermissionError(
            f"{path}: refusing to unpickle a k-means file whose sha256 is not known; pass --trust-pickle if you "
            "trust it, or give a .npy array of centroids (K x D) instead"
        )
    try:
        obj = _restricted_load(path)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means the same thing: not a usable file
        raise ValueError(f"{path}: not a readable k-means pickle ({type(exc).__name__}: {exc})") from exc
    return _check_centroids(path, _find_centers(obj))


def _check_centroids(path, centroids):
    import numpy as np

    if not isinstance(centroids, np.ndarray) or centroids.ndim != 2 or centroids.shape[0] < 1:
        got = getattr(centroids, "shape", type(centroids).__name__)
        raise ValueError(f"{path}: expected k-means centroids as a K x D array, got {got}")
    if not np.issubdtype(centroids.dtype, np.floating) or not np.isfinite(centroids).all():
        raise ValueError(f"{path}: centroids must be finite floating-point numbers (dtype {centroids.dtype})")
    return np.ascontiguousarray(centroids, dtype=np.float32)


def _find_centers(obj):
    state = obj.__dict__ if isinstance(obj, _Inert) else obj
    if isinstance(state, dict):
        for key in ("cluster_centers_", "centroids", "C"):
            if key in state:
                return state[key]
    return obj


class _Inert:
    """Stands in for any class a k-means pickle names (sklearn estimators, RandomState, ...): stores state, runs
    nothing."""

    def __init__(self, *args, **kwargs):
        self._args = args

    def __setstate__(self, state):
        if isinstance(state, tuple) and len(state) == 2 and isinstance(state[1], dict):
            state = {**(state[0] or {}), **state[1]}  # (dict state, slots state)
        if isinstance(state, dict):
            self.__dict__.update(state)
        else:
            self._state = state


def _restricted_load(path: str):
    import codecs
    import pickle

    import numpy as np
    from joblib import numpy_pickle

    multiarray = (np._core if hasattr(np, "_core") else np.core).multiarray
    real = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("builtins", "object"): object,
        ("__builtin__", "object"): object,
        ("copyreg", "_reconstructor"): lambda cls, base, state: cls(state),
        ("collections", "OrderedDict"): dict,
        ("_codecs", "encode"): codecs.encode,  # protocol 0/1 pickles carry array bytes as latin-1 text
    }
    numeric = (np._core if hasattr(np, "_core") else np.core).numeric
    for pkg in ("numpy.core", "numpy._core"):
        real[(f"{pkg}.multiarray", "_reconstruct")] = multiarray._reconstruct
        real[(f"{pkg}.multiarray", "scalar")] = multiarray.scalar
        real[(f"{pkg}.numeric", "_frombuffer")] = numeric._frombuffer  # protocol 5

    class ArrayWrapper(numpy_pickle.NumpyArrayWrapper):
        def read_array(self, unpickler, *args, **kwargs):
            if self.dtype.hasobject:  # joblib would call plain pickle.load on the stream for these
                raise pickle.UnpicklingError("object arrays are not allowed in a k-means file")
            return super().read_array(unpickler, *args, **kwargs)

    class Unpickler(numpy_pickle.NumpyUnpickler):
        def find_class(self, module, name):
            if (module, name) in real:
                return real[(module, name)]
            if module == "joblib.numpy_pickle" and name == "NumpyArrayWrapper":
                return ArrayWrapper
            return type(name, (_Inert,), {"__module__": f"inert.{module}"})

    with open(path, "rb") as raw, _decompressed(raw, path) as fh:
        try:
            unpickler = Unpickler(path, fh, ensure_native_byte_order=True)
        except TypeError:  # joblib < 1.5 has no ensure_native_byte_order
            unpickler = Unpickler(path, fh)
        return unpickler.load()


@contextlib.contextmanager
def _decompressed(raw, path):
    """joblib may have compressed the file; recognised by magic bytes and unwrapped with the standard library."""
    import bz2
    import gzip
    import io
    import lzma
    import zlib

    head = raw.read(6)
    raw.seek(0)
    if head.startswith(b"\x1f\x8b"):
        yield gzip.GzipFile(fileobj=raw)
    elif head.startswith(b"BZh"):
        yield bz2.BZ2File(raw)
    elif head.startswith(b"\xfd7zXZ\x00") or head.startswith(b"\x5d\x00\x00"):
        yield lzma.LZMAFile(raw)
    elif head[:1] == b"\x78" and head[1:2] in (b"\x01", b"\x5e", b"\x9c", b"\xda"):
        yield io.BytesIO(zlib.decompress(raw.read()))
    else:
        yield raw
