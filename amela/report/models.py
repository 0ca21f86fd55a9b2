"""Model files a run used, with their sha256 (cached in the run directory by size and mtime: hashed once)."""
from __future__ import annotations

import os

from ..hashing import file_sha256
from ..manifest import dumps, loads, write_bytes_atomic
from ..paths import RunPaths


def _candidates(stage: str, options: dict) -> list[tuple[str, str | None, str | None]]:
    """(option, local path or None, note) for each model-like option of the stage."""
    out: list[tuple[str, str | None, str | None]] = []
    if stage == "s2s":
        from ..s2s import models

        for key in ("dense", "kmeans", "vocoder", "vocoder_config"):
            if not options.get(key):
                continue
            try:
                res = models.resolve(options[key], key.replace("_", "-"), options.get("cache_dir"))
                out.append((key, res.path, "published sha256 verified" if res.verified else None))
            except Exception as exc:  # noqa: BLE001 - not in this machine's cache: say so, the report goes on
                out.append((key, None, f"{options[key]}: not found here ({exc.__class__.__name__})"))
    elif stage == "asr" and options.get("model"):
        from ..asr import models

        try:
            kind, path = models.resolve(options["model"], options.get("cache_dir"))
            out.append(("model", path if kind == "nemo" else None, None if kind == "nemo" else f"{kind}: {path}"))
        except Exception as exc:  # noqa: BLE001
            out.append(("model", None, f"{options['model']}: not found here ({exc.__class__.__name__})"))
    seen = {k for k, _, _ in out}
    for key, value in options.items():  # any other option naming an existing file (a k-means .npy, a vocab)
        if key not in seen and isinstance(value, str) and os.path.isfile(value):
            out.append((key, value, None))
    return out


def model_rows(stage: str, options: dict, run_root) -> list[list]:
    cache_path = str(RunPaths(run_root).model_hashes)
    try:
        with open(cache_path, "rb") as fh:
            cache = loads(fh.read())
    except (OSError, ValueError):
        cache = {}
    rows, changed = [], False
    for key, path, note in _candidates(stage, options):
        if path is None:
            rows.append([key, options.get(key), "", "", note or ""])
            continue
        st = os.stat(path)
        stamp = [st.st_size, st.st_mtime_ns]
        hit = cache.get(path)
        if not hit or hit[:2] != stamp:
            hit = stamp + [file_sha256(path)]
            cache[path], changed = hit, True
        rows.append([key, path, f"{st.st_size / 1e6:.1f} MB", hit[2], note or ""])
    if changed:
        try:
            write_bytes_atomic(cache_path, dumps(cache))
        except OSError:
            pass  # a read-only copy of a run directory: hashes are recomputed next time
    return rows

