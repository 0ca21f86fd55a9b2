"""ASR throughput: NeMo's own transcribe() vs the AMELA stage, duration-sorted vs unsorted batching, peak RSS, RTFx.

    .venv/bin/python bench/asr.py                      # tiny random-weight Conformer-CTC, synthetic corpus, CPU
    .venv/bin/python bench/asr.py --model parakeet.nemo --files 400 --batch 64   # a real model (GPU: prints RTFx)

Figures are printed, never asserted. All variants run in one process on the same model and corpus, one after the
other, each after a warm-up, so ratios are comparable within one run.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def make_corpus(root: str, files: int, seed: int = 0) -> list[dict]:
    """Mixed lengths (0.5-25 s, skewed short like real corpora), 16 kHz mono WAV."""
    import soundfile as sf

    rng = np.random.default_rng(seed)
    durations = np.clip(rng.lognormal(mean=1.3, sigma=0.9, size=files), 0.5, 25.0)
    records = []
    for i, d in enumerate(durations):
        path = os.path.join(root, f"b{i:04d}.wav")
        sf.write(path, (rng.standard_normal(int(d * 16000)) * 0.1).astype(np.float32), 16000)
        records.append({"audio_filepath": path, "duration": round(float(d), 3)})
    return records


CPU_TIMES: dict = {}


def timed(fn, repeats: int, name: str | None = None):
    """Best wall time of `repeats` runs; the CPU time of that run goes to CPU_TIMES[name] (steadier on a shared host)."""
    best, cpu = float("inf"), 0.0
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall = time.perf_counter() - t0
        if wall < best:
            best, cpu = wall, time.process_time() - c0
    if name:
        CPU_TIMES[name] = round(cpu, 3)
    return best


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_stage(stage, records, sort: bool):
    from amela.asr import batching

    plan = batching.plan_batches([r["duration"] for r in records], stage.budget_s, sort=sort)
    out = [None] * len(records)
    for positions in plan:
        for p, o in zip(positions, stage.process([records[p] for p in positions])):
            out[p] = o
    return out


def run_cli(tmp: str, records: list[dict], model_path: str, budget: float, device: str) -> None:
    """`amela run asr` with one shard, in this process (--workers 0): prepare, batches, append, merge, stats."""
    from amela.cli import main as amela_main

    manifest, run = os.path.join(tmp, "m.jsonl"), os.path.join(tmp, "run")
    with open(manifest, "w") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in records)
    shutil.rmtree(run, ignore_errors=True)
    rc = amela_main(["run", "asr", manifest, "-o", run, "--model", model_path, "--workers", "0", "--no-progress",
                     "--batch-s", str(budget), "--device", device])
    assert rc == 0, rc


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None, help=".nemo path (default: a tiny random-weight Conformer-CTC)")
    ap.add_argument("--files", type=int, default=160)
    ap.add_argument("--batch", type=int, default=16, help="items per batch for direct transcribe()")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: steadiest figures on a shared host)")
    args = ap.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)

    import torch
    from nemo.collections.asr.models import ASRModel

    from amela.asr.config import AsrConfig
    from amela.asr.stage import AsrStage
    from amela.asr.tiny import build_ctc

    torch.set_num_threads(args.threads)
    device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    tmp = tempfile.mkdtemp(prefix="amela-bench-asr-")
    try:
        model_path = args.model or os.path.join(tmp, "tiny_conformer_ctc.nemo")
        if not args.model:
            build_ctc("conformer").save_to(model_path)
        records = make_corpus(tmp, args.files)
        audio_s = sum(r["duration"] for r in records)
        paths = [r["audio_filepath"] for r in records]
        mean_s = audio_s / len(records)
        budget = args.batch * mean_s  # the same average batch as direct transcribe(batch_size=B)

        model = ASRModel.restore_from(model_path, map_location=device).eval()
        rss_model = rss_mib()

        def direct():
            with torch.inference_mode():
                return model.transcribe(paths, batch_size=args.batch, verbose=False, num_workers=0)

        direct()  # warm-up
        t_direct = timed(direct, args.repeats, "direct")

        stage = AsrStage(AsrConfig(model=model_path, device=device, batch_s=budget))
        stage.setup()
        run_stage(stage, records[:8], True)  # warm-up
        t_sorted = timed(lambda: run_stage(stage, records, True), args.repeats, "stage_sorted")
        t_unsorted = timed(lambda: run_stage(stage, records, False), args.repeats, "stage_unsorted")

        want = [h.text for h in direct()]
        got = [o["text"] for o in run_stage(stage, records, True)]
        same = sum(a == b for a, b in zip(want, got))
        alone = [model.transcribe([p], batch_size=1, verbose=False)[0].text for p in paths[:40]]
        same_alone = sum(a == b for a, b in zip(alone, got[:40]))
        t_runner = timed(lambda: run_cli(tmp, records, model_path, budget, device), args.repeats, "runner")

        figures = {
            "device": device + (f" ({torch.cuda.get_device_name()})" if device == "cuda" else ""),
            "model": args.model or "tiny random-weight Conformer-CTC (1 layer, d_model 32)",
            "files": len(records), "audio_seconds": round(audio_s, 1), "batch_items": args.batch,
            "stage_batch_s": round(budget, 1),
            "direct_transcribe_s": round(t_direct, 3), "stage_sorted_s": round(t_sorted, 3),
            "stage_unsorted_s": round(t_unsorted, 3),
            "runner_one_shard_s": round(t_runner, 3),
            "stage_overhead_vs_direct_pct": round(100 * (t_sorted / t_direct - 1), 1),
            "runner_overhead_vs_direct_pct": round(100 * (t_runner / t_direct - 1), 1),
            "sorted_speedup_vs_unsorted": round(t_unsorted / t_sorted, 2),
            "rtfx_direct": round(audio_s / t_direct, 1), "rtfx_stage_sorted": round(audio_s / t_sorted, 1),
            "identical_to_direct_batched": f"{same}/{len(records)}",
            "identical_to_each_file_alone": f"{same_alone}/40",
            "rss_after_model_mib": round(rss_model, 1), "peak_rss_mib": round(rss_mib(), 1),
            "cpu_seconds": CPU_TIMES,
            "cpu_stage_overhead_vs_direct_pct": round(100 * (CPU_TIMES["stage_sorted"] / CPU_TIMES["direct"] - 1), 1),
            "cpu_sorted_speedup_vs_unsorted": round(CPU_TIMES["stage_unsorted"] / CPU_TIMES["stage_sorted"], 2),
            "torch_threads": torch.get_num_threads(),
            "stage_stats": stage.stats(),
        }
        print(json.dumps(figures, indent=2))
        print(f"\nstage vs direct transcribe(): {figures['stage_overhead_vs_direct_pct']:+.1f}% wall time "
              f"(whole `amela run`, one shard: {figures['runner_overhead_vs_direct_pct']:+.1f}%); "
              f"sorted vs unsorted batching: {figures['sorted_speedup_vs_unsorted']:.2f}x; "
              f"RTFx {figures['rtfx_stage_sorted']:.0f} on {figures['device']}; peak RSS {figures['peak_rss_mib']:.0f} MiB")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
