"""`amela doctor` checks for the quality stage: onnxruntime, librosa, and the DNSMOS model files speechmos ships."""
from __future__ import annotations

import os


def _check(what: str, fn) -> tuple[str, bool, str]:
    try:
        return what, True, fn()
    except Exception as exc:  # noqa: BLE001 - a doctor reports every problem, it does not stop at the first
        return what, False, str(exc)


def _onnxruntime() -> str:
    try:
        import onnxruntime
    except ImportError as exc:
        raise RuntimeError(f"{exc}: pip install onnxruntime (CPU is enough: DNSMOS models are small)") from None
    return f"onnxruntime {onnxruntime.__version__} ({', '.join(onnxruntime.get_available_providers())})"


def _librosa() -> str:
    try:
        import librosa
    except ImportError as exc:
        raise RuntimeError(f"{exc}: pip install librosa (the P.808 model's mel features)") from None
    return f"librosa {librosa.__version__}"


def _models() -> str:
    from .dnsmos import MODEL_FILES, model_dir

    root = model_dir()
    sizes = {}
    for parts in MODEL_FILES.values():
        path = os.path.join(root, *parts)
        sizes[os.path.join(*parts)] = os.path.getsize(path) if os.path.isfile(path) else 0
    bad = [name for name, size in sizes.items() if not size]
    if bad:
        raise RuntimeError(f"missing or empty in {root}: {', '.join(bad)}; reinstall the package that ships them: "
                           "pip install --force-reinstall --no-deps speechmos==0.0.1.1")
    return f"{', '.join(f'{n} ({s / 1e6:.1f} MB)' for n, s in sizes.items())} in {root}"


def checks() -> list[tuple[str, bool, str]]:
    return [_check("onnxruntime", _onnxruntime), _check("librosa (P.808 features)", _librosa),
            _check("DNSMOS model files", _models)]
