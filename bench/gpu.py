"""The full-size models on one device: one table of ASR, S2S and VAD throughput (bench/gpu.sh runs this).

    python bench/gpu.py --models DIR [--device auto|cuda|cpu] [--asr-files N] [--s2s-files N] [--json OUT]

ASR (parakeet-tdt-0.6b-v2 architecture, random weights): the AMELA stage in-process at the batch budget it derives
itself (free memory after the model loaded), in float32 and in bfloat16 autocast, against NeMo's own
`model.transcribe(paths, batch_size=B)` on the same files with B the stage's mean batch size; RTFx = audio seconds per
wall second. Peak memory (GPU: torch.cuda.max_memory_allocated; CPU: peak RSS) beside the budget's prediction.
S2S (mHuBERT + km1000 + unit HiFi-GAN): files/s on 10 s files, encode and resynth, batched at the budget vs one file
per forward. VAD (TEN-VAD, CPU): the same ASR files, for scale. Random weights make the words and sounds wrong but
the compute, memory and code paths those of the real models.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time

import numpy as np
import soundfile as sf

RATE = 16000
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _peak_reset(device: str) -> None:
    if device == "cuda":
        import torch

        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    else:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")


def _peak_gib(device: str) -> float:
    if device == "cuda":
        import torch

        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() / 2**30
    with open("/proc/self/status", encoding="ascii") as fh:
        kib = next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:"))
    return kib / 2**20


def _sync(device: str) -> None:
    if device == "cuda":
        import torch

        torch.cuda.synchronize()


def make_corpus(root: str, n: int, lengths_s: tuple[float, ...], seed: int) -> list[dict]:
    """Speech-like noise files (bursts and pauses) of the given lengths, cycled; records with durations."""
    rng = np.random.default_rng(seed)
    os.makedirs(root, exist_ok=True)
    records = []
    for i in range(n):
        d = lengths_s[i % len(lengths_s)]
        t = np.arange(int(d * RATE)) / RATE
        envelope = (np.sin(2 * np.pi * rng.uniform(1.5, 4) * t) > -0.3).astype(np.float32)
        x = (0.1 * rng.standard_normal(len(t)) * envelope).astype(np.float32)
        path = os.path.join(root, f"f{i:04d}.wav")
        sf.write(path, x, RATE)
        records.append({"audio_filepath": path, "duration": d})
    return records


def run_stage(stage, records: list[dict], device: str) -> tuple[float, list]:
    """What the runner does with one shard: batches() then process() per batch; returns (wall s, outcomes)."""
    _sync(device)
    t0 = time.time()
    outs = []
    for positions in stage.batches(records):
        outs += stage.process([records[p] for p in positions])
    _sync(device)
    failed = [o for o in outs if isinstance(o, BaseException)]
    if failed:
        raise RuntimeError(f"{len(failed)} item(s) failed, e.g. {failed[0]}")
    return time.time() - t0, outs


def bench_asr(models: str, device: str, records: list[dict], rows: list[dict]) -> None:
    import torch
    from nemo.utils import logging as nemo_logging

    from amela.asr import batching
    from amela.asr.backend import autocast_for
    from amela.asr.config import AsrConfig
    from amela.asr.stage import AsrStage

    nemo_logging.setLevel(40)  # errors only: its per-call info lines would drown the progress
    audio_s = sum(r["duration"] for r in records)
    stage = AsrStage(AsrConfig(model=os.path.join(models, "parakeet-tdt-0.6b-v2.nemo"), device=device,
                               dtype="float32"))
    t0 = time.time()
    with contextlib.redirect_stdout(sys.stderr):  # NeMo prints its loss config: keep stdout for the table
        stage.setup()
    load_s = time.time() - t0
    budget_s = stage.budget_s
    sizes = [len(b) for b in batching.plan_batches([r["duration"] for r in records], budget_s)]
    mean_batch = max(1, round(len(records) / len(sizes)))
    weight_bytes = sum(p.numel() * p.element_size() for p in stage.backend.model.parameters())
    stage.process(records[:1])  # warm-up: kernels, lazy buffers
    dtypes = ["float32", "bfloat16"] if device == "cpu" or torch.cuda.is_bf16_supported() else ["float32", "float16"]
    for dtype in dtypes:
        stage.backend.autocast, stage.backend.dtype = autocast_for(device, dtype)
        cast = stage._cast_bytes()
        if device == "cuda":  # the budget the stage would set for this dtype, from the memory free now
            torch.cuda.empty_cache()
            stage.budget_s = batching.budget_from_free_bytes(torch.cuda.mem_get_info()[0], cast)
        budget_s = stage.budget_s
        # What a full batch should peak at (the first batch is the biggest: batches are sorted longest first).
        predicted = batching.predicted_peak_bytes(min(budget_s, audio_s), weight_bytes, cast) / 2**30
        _peak_reset(device)
        wall, _ = run_stage(stage, records, device)
        rows.append({"what": f"ASR stage, {dtype}", "batch": f"{budget_s:.0f} s budget (~{mean_batch} files)",
                     "audio_s": audio_s, "wall_s": wall, "rtfx": audio_s / wall, "files_s": len(records) / wall,
                     "peak_gib": _peak_gib(device), "predicted_gib": predicted, "load_s": load_s})
    model = stage.backend.model
    paths = [r["audio_filepath"] for r in records]
    stage.backend.autocast, label = autocast_for(device, dtypes[-1])
    _peak_reset(device)
    _sync(device)
    t0 = time.time()
    with torch.inference_mode(), stage.backend.autocast():
        hyps = model.transcribe(paths, batch_size=mean_batch, verbose=False, num_workers=0)
    _sync(device)
    wall = time.time() - t0
    assert len(hyps) == len(paths)
    rows.append({"what": f"NeMo transcribe(paths), {label}", "batch": f"batch_size={mean_batch}",
                 "audio_s": audio_s, "wall_s": wall, "rtfx": audio_s / wall, "files_s": len(records) / wall,
                 "peak_gib": _peak_gib(device), "predicted_gib": None})
    stage.teardown()
    del stage, model
    if device == "cuda":
        torch.cuda.empty_cache()


def bench_s2s(models: str, device: str, records: list[dict], out_dir: str, rows: list[dict]) -> None:
    import torch

    from amela.config import from_dict
    from amela.s2s import budget
    from amela.s2s.config import S2SConfig
    from amela.s2s.stage import S2SStage
    from amela.stage import FileSink

    audio_s = sum(r["duration"] for r in records)
    base = {"dense": os.path.join(models, "mhubert_base_vp_en_es_fr_it3.pt"), "layer": 11,
            "kmeans": os.path.join(models, "mhubert_base_vp_en_es_fr_it3_L11_km1000.bin"), "trust_pickle": True,
            "vocoder": os.path.join(models, "mhubert_vp_en_es_fr_it3_400k_layer11_km1000_lj_g_00500000.pt"),
            "vocoder_config": os.path.join(models, "mhubert_vp_en_es_fr_it3_400k_layer11_km1000_lj_config.json"),
            "device": device, "input_root": os.path.dirname(records[0]["audio_filepath"])}
    longest = max(r["duration"] for r in records)
    for mode in ("encode", "resynth"):
        stage = None
        for label, batch_s in (("batched", None), ("one at a time", longest)):
            cfg = from_dict(S2SConfig, {**base, "mode": mode, "batch_s": batch_s}, "bench")
            if stage is None:
                stage = S2SStage(cfg, FileSink(os.path.join(out_dir, mode)))
                stage.setup()
                stage.process(records[:1])  # warm-up
            stage.config = cfg  # same models; the budget is what differs
            if device == "cuda":
                torch.cuda.empty_cache()  # what the caching allocator holds would not count as free
            stage.budget_s = stage._initial_budget(device)
            weights = sum(p.numel() * p.element_size() for m in (stage.reader.model, stage.vocoder and
                                                                   stage.vocoder.model) if m for p in m.parameters())
            predicted = (weights + (budget.MIB_PER_CHUNK_SECOND * min(longest, cfg.chunk_s)
                                    + budget.MIB_PER_BATCH_SECOND * min(stage.budget_s, audio_s)) * 2**20) / 2**30
            _peak_reset(device)
            wall, _ = run_stage(stage, records, device)
            rows.append({"what": f"S2S {mode}, {label}", "batch": f"{stage.budget_s:.0f} s budget",
                         "audio_s": audio_s, "wall_s": wall, "rtfx": audio_s / wall, "files_s": len(records) / wall,
                         "peak_gib": _peak_gib(device), "predicted_gib": predicted})
        del stage
        if device == "cuda":
            torch.cuda.empty_cache()


def bench_vad(records: list[dict], rows: list[dict]) -> None:
    from amela.config import from_dict
    from amela.vad.config import VadConfig
    from amela.vad.stage import VadStage

    stage = VadStage(from_dict(VadConfig, {}, "bench"))
    stage.setup()
    audio_s = sum(r["duration"] for r in records)
    wall, _ = run_stage(stage, records, "cpu")
    rows.append({"what": "VAD stage (TEN-VAD, 1 CPU worker)", "batch": "16 files", "audio_s": audio_s,
                 "wall_s": wall, "rtfx": audio_s / wall, "files_s": len(records) / wall, "peak_gib": None,
                 "predicted_gib": None})


def table(rows: list[dict], device_name: str) -> str:
    def f(v, fmt):
        return "-" if v is None else format(v, fmt)

    lines = [f"device: {device_name}", "",
             "| what | batch | audio s | wall s | RTFx | files/s | peak GiB | predicted GiB |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['what']} | {r['batch']} | {r['audio_s']:.0f} | {r['wall_s']:.2f} | {r['rtfx']:.1f} | "
                     f"{r['files_s']:.2f} | {f(r['peak_gib'], '.2f')} | {f(r['predicted_gib'], '.2f')} |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", required=True, help="folder written by scripts/fullsize_models.py")
    ap.add_argument("--device", default="auto", choices=("auto", "cuda", "cpu"))
    ap.add_argument("--asr-files", type=int, default=None, help="ASR/VAD corpus size (default: 512 GPU, 4 CPU)")
    ap.add_argument("--s2s-files", type=int, default=None, help="10 s files for S2S (default: 64 GPU, 2 CPU)")
    ap.add_argument("--skip", action="append", default=[], choices=("asr", "s2s", "vad"))
    ap.add_argument("--json", default=None, help="also write the rows here")
    args = ap.parse_args()
    import torch

    device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        print("bench/gpu.py: --device cuda but no CUDA device is visible", file=sys.stderr)
        return 2
    name = torch.cuda.get_device_name(0) if device == "cuda" else f"CPU ({os.cpu_count()} cores, float32 models)"
    gpu = device == "cuda"
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="amela-gpu-bench-") as tmp:
        # ASR: a mix of utterance lengths as a VAD-segmented corpus has them (2-30 s).
        asr = make_corpus(os.path.join(tmp, "asr"), args.asr_files or (512 if gpu else 4),
                          (4.0, 12.0, 7.5, 20.0, 2.0, 30.0, 9.0, 15.0) if gpu else (3.0, 5.0), seed=1)
        s2s = make_corpus(os.path.join(tmp, "s2s"), args.s2s_files or (64 if gpu else 2), (10.0,), seed=2)
        for part, fn in (("asr", lambda: bench_asr(args.models, device, asr, rows)),
                         ("s2s", lambda: bench_s2s(args.models, device, s2s, os.path.join(tmp, "out"), rows)),
                         ("vad", lambda: bench_vad(asr, rows))):
            if part in args.skip:
                continue
            t0 = time.time()
            fn()
            print(f"[{part} done in {time.time() - t0:.0f} s]", file=sys.stderr, flush=True)
    print(table(rows, name))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"device": name, "rows": rows}, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
