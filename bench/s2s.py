"""S2S feature-extraction speed, printed (never asserted). Builds a HuBERT-base-sized model with random weights in
the 2021 checkpoint format (nothing downloaded), plus random 1000-unit centroids, and measures in one run:

  1. overhead: the stage (audio read + feature reader + k-means), one file at a time, vs the model's own forward
     (HubertModel.extract_features, one file at a time, as textlesslib called it) on the same audio;
  2. batched (sorted by duration, padding masks) vs one file at a time, through the stage;
  3. torch threads 1 vs all (CPU only);
  4. optionally (--vocoder) a full-size unit HiFi-GAN: synthesis speed.

    .venv/bin/python bench/s2s.py [--files 16] [--min-s 2] [--max-s 8] [--device cpu|cuda] [--fp16]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def make_audio(root: str, n: int, lo: float, hi: float) -> list[dict]:
    import numpy as np
    import soundfile as sf

    rng = np.random.RandomState(0)
    records = []
    for i in range(n):
        d = float(rng.uniform(lo, hi))
        t = np.arange(int(d * 16000)) / 16000
        x = 0.3 * np.sin(2 * np.pi * rng.uniform(100, 400) * t) + 0.05 * rng.randn(len(t))
        path = os.path.join(root, f"utt{i:03d}.wav")
        sf.write(path, x.astype("float32"), 16000)
        records.append({"audio_filepath": path, "duration": len(t) / 16000})
    return records


def timed(fn, sync, clock=time.perf_counter) -> float:
    sync()
    t0 = clock()
    fn()
    sync()
    return clock() - t0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=16)
    ap.add_argument("--min-s", type=float, default=2.0)
    ap.add_argument("--max-s", type=float, default=8.0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--fp16", action="store_true")
    ap.add_argument("--layer", type=int, default=11)
    ap.add_argument("--batch-s", type=float, default=200.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--vocoder", action="store_true", help="also time a full-size unit HiFi-GAN")
    args = ap.parse_args(argv)
    import shutil

    tmp = tempfile.mkdtemp(prefix="amela-bench-s2s-")
    try:
        return run(args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # a HuBERT-base checkpoint is ~400 MB


def run(args, tmp: str) -> int:

    import numpy as np
    import torch

    from amela.config import from_dict
    from amela.s2s.config import S2SConfig
    from amela.s2s.stage import S2SStage
    from amela.s2s.testing import BASE, build_hubert, build_vocoder
    from amela.stage import FileSink

    cuda = args.device.startswith("cuda")
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    all_threads = torch.get_num_threads()
    print(f"building a HuBERT-base-sized 2021-format checkpoint in {tmp} ...", flush=True)
    writer = build_hubert(os.path.join(tmp, "hubert.pt"), int_fields_as_float=(), **BASE)
    del writer
    np.save(os.path.join(tmp, "km.npy"), np.random.RandomState(0).randn(1000, 768).astype("float32"))
    records = make_audio(tmp, args.files, args.min_s, args.max_s)
    audio_s = sum(r["duration"] for r in records)
    cfg = {"dense": os.path.join(tmp, "hubert.pt"), "layer": args.layer, "kmeans": os.path.join(tmp, "km.npy"),
           "device": args.device, "fp16": args.fp16, "batch_s": args.batch_s}
    stage = S2SStage(from_dict(S2SConfig, cfg), FileSink(os.path.join(tmp, "out")))
    stage.setup()
    model = stage.reader.model
    waves = [torch.from_numpy(__import__("soundfile").read(r["audio_filepath"], dtype="float32")[0]) for r in records]
    print(f"{len(records)} files, {audio_s:.1f} s of audio, device {args.device}"
          f"{' fp16' if args.fp16 else ''}, torch threads {all_threads}\n", flush=True)

    def direct_one(i):
        with torch.inference_mode():
            x = waves[i].to(args.device, stage.reader.dtype).view(1, -1)
            model.extract_features(x, padding_mask=None, mask=False, output_layer=args.layer)

    def direct():
        for i in range(len(waves)):
            direct_one(i)

    def paired_overhead() -> tuple[float, float]:
        """Per file, the model's forward and the stage alternately, best of N each, so both see the same load. On
        CPU: one thread and process CPU time, which other jobs on the machine do not inflate."""
        clock = time.perf_counter if cuda else time.process_time
        if not cuda:
            torch.set_num_threads(1)
        t_model = [float("inf")] * len(records)
        t_stage = [float("inf")] * len(records)
        for _ in range(args.repeats):
            for i, r in enumerate(records):
                t_model[i] = min(t_model[i], timed(lambda i=i: direct_one(i), sync, clock))
                t_stage[i] = min(t_stage[i], timed(lambda r=r: stage.process([r]), sync, clock))
        torch.set_num_threads(all_threads)
        return sum(t_model), sum(t_stage)

    def stage_single():
        for r in records:
            stage.process([r])

    def stage_batched():
        for b in stage.batches(records):
            stage.process([records[i] for i in b])

    stage_batched()  # warm-up (allocator, kernels)
    variants = [("model forward, one file at a time", direct, all_threads),
                ("stage, one file at a time", stage_single, all_threads),
                (f"stage, batched ({len(stage.batches(records))} batches)", stage_batched, all_threads)]
    if not cuda and all_threads > 1:
        variants += [("model forward, one file at a time, 1 thread", direct, 1),
                     ("stage, batched, 1 thread", stage_batched, 1)]
    best = {name: float("inf") for name, _, _ in variants}
    for _ in range(args.repeats):  # interleaved, best of N: a busy machine slows single passes, not the minimum
        for name, fn, threads in variants:
            torch.set_num_threads(threads)
            best[name] = min(best[name], timed(fn, sync))
    torch.set_num_threads(all_threads)
    paired = paired_overhead()
    rows = list(best.items())
    t_direct, t_single, t_batched = rows[0][1], rows[1][1], rows[2][1]
    width = max(len(r[0]) for r in rows)
    for name, t in rows:
        print(f"  {name:<{width}}  {t:7.2f} s  {audio_s / t:7.1f} x real time  {len(records) / t:6.2f} files/s")
    print(f"\n  stage overhead vs the model's forward (one file at a time): {100 * (t_single / t_direct - 1):+.1f}%")
    print(f"  same, paired per file{'' if cuda else ', 1 thread, CPU time'} (model {paired[0]:.2f} s, "
          f"stage {paired[1]:.2f} s): "
          f"{100 * (paired[1] / paired[0] - 1):+.1f}%")
    print(f"  batched speed-up over one file at a time:                    {t_single / t_batched:.2f}x")
    if len(rows) > 3:
        print(f"  {all_threads} threads vs 1 (stage, batched):                       {rows[4][1] / t_batched:.2f}x")
    print(f"  (best of {args.repeats} interleaved runs; load average {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} CPUs)")

    if args.vocoder:
        from amela.s2s.vocoder import UnitVocoder

        build_vocoder(os.path.join(tmp, "g.pt"), os.path.join(tmp, "config.json"), 1000, channels=512,
                      resblock_kernel_sizes=[3, 7, 11], resblock_dilation_sizes=[[1, 3, 5]] * 3,
                      embedding_dim=128, model_in_dim=128)
        voc = UnitVocoder(os.path.join(tmp, "g.pt"), os.path.join(tmp, "config.json"), args.device, args.fp16)
        units = [np.random.RandomState(i).randint(0, 1000, int(r["duration"] * 50)).tolist()
                 for i, r in enumerate(records[:4])]
        voc.synthesize(units[0][:50])
        t = timed(lambda: [voc.synthesize(u) for u in units], sync)
        secs = sum(len(u) for u in units) / 50
        print(f"\n  unit HiFi-GAN (512 channels): {secs:.1f} s of audio in {t:.2f} s = {secs / t:.1f} x real time")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
