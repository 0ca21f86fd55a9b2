"""`amela vad probs | resegment | tune`: work with stored frame probabilities (light to import)."""
from __future__ import annotations

import argparse
import os
import sys

from ..audio import SAMPLE_RATE

RESEGMENT_HELP = """\
Rebuild vad.jsonl, vad_stats.csv, split points, vad_segments.jsonl / vad_packed.jsonl and the report from the
probabilities an earlier run stored (--save-probs), without audio or model: minutes for a corpus the model took hours
on. NEW_RUN_DIR is an ordinary run (sharded, resumable, any backend). Options not given keep the old run's values;
hop_size and channel cannot change. With float32 probabilities the outputs equal a full rerun with the same options."""


def register(subparsers, stage_name: str | None = None) -> None:
    vad = subparsers.add_parser("vad", help="VAD tools: stored probabilities, resegment, tune on labels")
    sub = vad.add_subparsers(dest="vad_command", required=True, metavar="SUBCOMMAND")

    p = sub.add_parser("probs", help="print or export one file's stored frame probabilities",
                       description="One file's frame probabilities from a run made with --save-probs: printed as "
                                   "`start_s<TAB>probability` lines, or exported (.npy, .csv, .json) and plotted.")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("audio", metavar="AUDIO_PATH")
    p.add_argument("--offset", type=float, default=None, help="which span of the file, when the run had several")
    p.add_argument("-o", "--output", default=None, metavar="FILE", help="write .npy, .csv or .json instead of printing")
    p.add_argument("--plot", default=None, metavar="PNG", help="also plot the probabilities and the threshold")
    p.set_defaults(func=cmd_probs)

    _resegment_parser(sub)
    from .tune import add_parser as add_tune

    add_tune(sub)


def _resegment_parser(sub) -> None:
    from .. import config as cfg
    from ..cli_common import BACKENDS, backend_module
    from ..runner import RunOptions
    from .config import VadConfig
    from .stage import PRESETS

    p = sub.add_parser("resegment", help="re-cut a VAD run from its stored probabilities (no model)",
                       description=RESEGMENT_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("old_run", metavar="RUN_DIR", help="a VAD run made with --save-probs")
    p.add_argument("-o", "--output", dest="run_dir", required=True, metavar="NEW_RUN_DIR")
    p.add_argument("--config", metavar="FILE", help="YAML with VAD options (e.g. the best.yaml of `amela vad tune`)")
    p.add_argument("--preset", choices=sorted(PRESETS), default=None, help="a named set of VAD options")
    p.add_argument("--backend", choices=BACKENDS, default="local", help="where shards run (default: local)")
    p.add_argument("--retry-failed", action="store_true", help="re-attempt items that failed in an earlier attempt")
    p.add_argument("--no-progress", action="store_true", help="log lines instead of a progress bar")
    cfg.add_arguments(p, RunOptions, "run options")
    for backend in BACKENDS[1:]:
        mod = backend_module(backend, required=False)
        if mod is not None and hasattr(mod, "add_arguments"):
            mod.add_arguments(p)
    cfg.add_arguments(p, VadConfig, "vad options (default: the old run's)")
    p.set_defaults(func=cmd_resegment)


def cmd_resegment(args) -> int:
    from .. import config as cfg
    from ..cli_common import run_spec
    from ..paths import RunPaths
    from ..runner import RunOptions, RunSpec
    from .config import VadConfig
    from .stage import PRESETS
    from .stored import check_fixed, old_run_options, write_input

    old, new = RunPaths(args.old_run), RunPaths(args.run_dir)
    if old.root == new.root:
        from ..errors import ConfigError

        raise ConfigError("resegment: NEW_RUN_DIR must differ from RUN_DIR (the old run is its input)")
    base = old_run_options(old)
    yaml_opts = {}
    if args.config:
        data = cfg.load_yaml(args.config)
        yaml_opts = data.get("options") or {} if "options" in data else data
    preset = PRESETS.get(args.preset or "", {})
    options = cfg.from_dict(VadConfig, {**base, **preset, **yaml_opts, **cfg.pick(args, VadConfig)}, "vad options")
    check_fixed(base, options)
    run = cfg.from_dict(RunOptions, cfg.pick(args, RunOptions), "run options")
    manifest = write_input(old, new)
    spec = RunSpec("amela.vad.resegment:ResegmentStage", manifest, run, options)
    return run_spec(spec, args)


def cmd_probs(args) -> int:
    import numpy as np

    from ..errors import ConfigError
    from ..paths import RunPaths
    from ..runner.blobs import iter_index, read
    from .probs import decode
    from .stage import PROBS

    paths = RunPaths(args.run_dir)
    target = os.path.abspath(args.audio)
    found = [(sp, e) for sp, _, e in iter_index(paths, PROBS) if e["audio_filepath"] in (target, args.audio)]
    if args.offset is not None:
        found = [(sp, e) for sp, e in found if abs(float(e["offset"] or 0) - args.offset) < 1e-6]
    if not found:
        if not any(True for _ in iter_index(paths, PROBS)):
            raise ConfigError(f"{paths.root}: no stored probabilities (run the VAD with --save-probs)")
        raise ConfigError(f"{paths.root}: no stored probabilities for {args.audio}"
                          + (f" at offset {args.offset:g}" if args.offset is not None else ""))
    if len(found) > 1:
        offsets = ", ".join(f"{float(e['offset'] or 0):g}" for _, e in found)
        raise ConfigError(f"{args.audio}: {len(found)} spans in this run (offsets {offsets}); pick one with --offset")
    sp, entry = found[0]
    probs = decode(read(sp.blob(PROBS), entry), entry["dtype"])
    frame_s = entry["hop_size"] / SAMPLE_RATE
    times = entry["offset_s"] + np.arange(len(probs)) * frame_s
    if args.output:
        _export(args.output, times, probs, entry)
    else:
        out = sys.stdout
        try:
            out.write(f"# {entry['audio_filepath']}  {len(probs)} frames of {frame_s * 1000:g} ms, stored as "
                      f"{entry['dtype']}\n# start_s\tprobability\n")
            out.writelines(f"{t:.3f}\t{p:.4f}\n" for t, p in zip(times.tolist(), probs.tolist()))
            out.flush()
        except BrokenPipeError:  # `| head`: the reader has what it wanted
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    if args.plot:
        _plot(args.plot, times, probs, entry, paths)
    return 0


def _export(path: str, times, probs, entry: dict) -> None:
    import numpy as np

    from ..manifest import dumps, write_bytes_atomic

    if path.endswith(".npy"):
        import io

        buf = io.BytesIO()
        np.save(buf, probs)
        write_bytes_atomic(path, buf.getvalue())
    elif path.endswith(".json"):
        write_bytes_atomic(path, dumps({"audio_filepath": entry["audio_filepath"], "offset_s": entry["offset_s"],
                                        "frame_s": entry["hop_size"] / SAMPLE_RATE, "dtype": entry["dtype"],
                                        "probabilities": [round(p, 4) for p in probs.tolist()]}))
    elif path.endswith(".csv"):
        lines = ["start_s,probability"] + [f"{t:.3f},{p:.4f}" for t, p in zip(times.tolist(), probs.tolist())]
        write_bytes_atomic(path, ("\n".join(lines) + "\n").encode())
    else:
        from ..errors import ConfigError

        raise ConfigError(f"{path}: unknown export format; use a name ending in .npy, .csv or .json")
    print(f"{len(probs)} probabilities written to {path}")


def _plot(path: str, times, probs, entry: dict, paths) -> None:
    import io

    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    from ..manifest import write_bytes_atomic
    from ..runner import load_spec

    options = load_spec(paths).options
    fig = Figure(figsize=(12, 3), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(times, probs, linewidth=0.8, color="#3b75af")
    ax.axhline(options.threshold, color="#c0392b", linestyle="--", linewidth=1, label=f"threshold {options.threshold}")
    if options.neg_threshold is not None:
        ax.axhline(options.neg_threshold, color="#e67e22", linestyle=":", linewidth=1,
                   label=f"neg_threshold {options.neg_threshold}")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("seconds")
    ax.set_ylabel("speech probability")
    ax.set_title(os.path.basename(entry["audio_filepath"]), fontsize=10)
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    write_bytes_atomic(path, buf.getvalue())
    print(f"plot written to {path}")
