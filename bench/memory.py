"""Peak memory against total batch seconds, for the batch budgets (docs/asr.md, docs/s2s.md "Memory model").

    python bench/memory.py --asr MODELS/parakeet-tdt-0.6b-v2.nemo [--points 30,60,120,240] [--item-s 15]
    python bench/memory.py --s2s MODELS/mhubert_base_vp_en_es_fr_it3.pt [--points 25,50,100,200]

One process, one model load; for each point the batch (items of --item-s, padded to one length as the stage
batches them) goes through the real forward (ASR: NeMo's transcribe(); S2S: AMELA's HubertReader at layer 11), and the
process's peak resident memory is read from /proc (VmHWM, reset before each point through /proc/self/clear_refs, freed
heap handed back with malloc_trim first). The activation cost is the peak minus the resident size before the call.
A least-squares line through the points gives the per-second cost (MiB per audio second) that the GPU batch budget
divides free memory by. CPU float32 figures: on a GPU under bf16/fp16 autocast activations take about half, which
the budget keeps as headroom (see the docs).
"""
from __future__ import annotations

import argparse
import ctypes
import json
import os
import time

import numpy as np

RATE = 16000


def _status_kib(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_peak() -> int:
    """Return freed heap to the OS, reset the peak RSS; returns the resident KiB now."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass
    with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
        fh.write("5")
    return _status_kib("VmRSS")


def measure(run_batch, points: list[float], item_s: float) -> list[dict]:
    rng = np.random.default_rng(0)
    run_batch([(rng.standard_normal(int(min(points) * RATE)) * 0.1).astype(np.float32)])  # warm-up: lazy buffers
    rows = []
    for total in points:
        n = max(1, round(total / item_s))
        seconds = total / n
        arrays = [(rng.standard_normal(int(seconds * RATE)) * 0.1).astype(np.float32) for _ in range(n)]
        before = _reset_peak()
        t0 = time.time()
        run_batch(arrays)
        wall = time.time() - t0
        peak = _status_kib("VmHWM")
        rows.append({"batch_s": total, "items": n, "rss_before_mib": round(before / 1024),
                     "peak_mib": round(peak / 1024), "activation_mib": round((peak - before) / 1024),
                     "wall_s": round(wall, 1)})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def fit(rows: list[dict]) -> tuple[float, float]:
    """(MiB per audio second, MiB fixed) by least squares over the points."""
    x = np.array([r["batch_s"] for r in rows], dtype=float)
    y = np.array([r["activation_mib"] for r in rows], dtype=float)
    slope, intercept = np.polyfit(x, y, 1) if len(rows) > 1 else (y[0] / x[0], 0.0)
    return float(slope), float(intercept)


def asr_runner(path: str):
    import torch
    from nemo.collections.asr.models import ASRModel

    model = ASRModel.restore_from(path, map_location="cpu").eval()

    def run(arrays):
        with torch.inference_mode():
            model.transcribe(arrays, batch_size=len(arrays), verbose=False, num_workers=0)
    return run


def s2s_runner(path: str, layer: int = 11):
    import torch

    from amela.s2s.hubert import HubertReader

    reader = HubertReader.from_checkpoint(path, layer)

    def run(arrays):
        reader.features([torch.from_numpy(a) for a in arrays])
    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--asr", help="a .nemo model (e.g. the full-size parakeet from scripts/fullsize_models.py)")
    ap.add_argument("--s2s", help="a HuBERT checkpoint (e.g. the full-size mHuBERT)")
    ap.add_argument("--points", default=None, help="total batch seconds, comma-separated")
    ap.add_argument("--item-s", type=float, default=None, help="length of each item in a batch")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default=None, help="also write the rows and the fit here")
    args = ap.parse_args()
    if bool(args.asr) == bool(args.s2s):
        ap.error("give exactly one of --asr MODEL.nemo or --s2s HUBERT.pt")
    import torch

    torch.set_num_threads(args.threads)
    if args.asr:
        run, default_points, default_item = asr_runner(args.asr), "30,60,120,240", 15.0
    else:
        run, default_points, default_item = s2s_runner(args.s2s), "25,50,100,200", 25.0
    points = [float(p) for p in (args.points or default_points).split(",")]
    item = args.item_s or default_item
    print(f"model loaded; resident {_status_kib('VmRSS') / 1024:.0f} MiB; items of {item:g} s", flush=True)
    rows = measure(run, points, item)
    slope, intercept = fit(rows)
    print("\n| batch s | items | activation MiB | wall s |\n|---|---|---|---|")
    for r in rows:
        print(f"| {r['batch_s']:g} | {r['items']} | {r['activation_mib']} | {r['wall_s']} |")
    print(f"\nfit: {slope:.1f} MiB per audio second + {intercept:.0f} MiB "
          f"(= {1024 / slope:.1f} audio seconds per GiB, CPU float32)")
    if args.json:
        with open(args.json + ".tmp", "w", encoding="utf-8") as fh:
            json.dump({"rows": rows, "mib_per_second": slope, "mib_fixed": intercept}, fh, indent=2)
        os.replace(args.json + ".tmp", args.json)


if __name__ == "__main__":
    main()
