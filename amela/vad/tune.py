"""`amela vad tune LABELLED -o TUNE_DIR`: choose VAD options on labelled audio, from probabilities computed once.

LABELLED is a directory of audio with NAME.rttm or NAME.scv label files, or a manifest whose records carry
`ref_segments`. The model runs once (an ordinary resumable VAD run in TUNE_DIR/vad_run with float32 probabilities),
or not at all with --probs-from; the grid search then re-cuts the stored probabilities for every option set.
"""
from __future__ import annotations

import argparse
import logging
import os

import numpy as np

logger = logging.getLogger("amela.vad")

HELP = """\
Grid-search VAD options (threshold, neg_threshold, min_speech_s, min_silence_s, pad_s by default; any segmentation
option with --grid) against reference labels, scored on a 10 ms grid (precision, recall, F1; per file and pooled).
Writes TUNE_DIR/best.yaml (usable as `--config` of `amela run vad` and `amela vad resegment`), tune_results.csv (every
option set), tune_per_file.csv (default vs best), tune_report.png and tune_summary.json. With --folds K (default 5)
the options are also chosen K times on K-1 folds of files and scored on the held-out fold: the cross-validated score
is what to expect on new data; the best in-sample score is optimistic."""


def add_parser(sub) -> None:
    from .scoring import OBJECTIVES

    p = sub.add_parser("tune", help="choose VAD options on labelled audio (grid search on stored probabilities)",
                       description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("labelled", metavar="LABELLED", help="directory of audio + NAME.rttm / NAME.scv, or a manifest "
                                                        "with ref_segments")
    p.add_argument("-o", "--output", dest="tune_dir", required=True, metavar="TUNE_DIR")
    p.add_argument("--grid", metavar="FILE", help="YAML mapping option -> list of values (replaces the default grid)")
    p.add_argument("--objective", choices=OBJECTIVES, default="f1", help="what to maximise (default: f1)")
    p.add_argument("--folds", type=int, default=5, help="k-fold cross-validation over files (0: off; default 5)")
    p.add_argument("--probs-from", metavar="RUN_DIR", help="use this VAD run's stored probabilities (--save-probs) "
                                                           "instead of running the model")
    p.add_argument("--hop-size", type=int, choices=(160, 256), default=256, help="VAD hop when the model runs")
    p.add_argument("--workers", type=int, default=None, help="worker processes for the model run")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_tune)


def _model_run(items, tune_dir: str, hop_size: int, workers, show_progress: bool):
    """The labelled audio through the VAD once, float32 probabilities stored (resumable: reruns skip it)."""
    from ..executors.local import run_local
    from ..manifest import write_jsonl_atomic
    from ..paths import RunPaths
    from ..runner import RunOptions, RunSpec, locked, merge, prepare
    from .config import VadConfig

    paths = RunPaths(os.path.join(tune_dir, "vad_run"))
    manifest = os.path.join(tune_dir, "tune_input.jsonl")
    if not paths.plan.exists():
        write_jsonl_atomic(manifest, (it.record for it in items))
    spec = RunSpec("vad", os.path.abspath(manifest), RunOptions(workers=workers),
                   VadConfig(hop_size=hop_size, save_probs="float32"))
    paths.root.mkdir(parents=True, exist_ok=True)
    with locked(paths.lock, f"run directory {paths.root}"):
        prepare(paths, spec)
        run_local(paths, spec, workers, show_progress=show_progress)
        stats = merge(paths, spec.stage_class()(spec.options))
    if stats["failed"]:
        logger.warning("%d labelled file(s) failed in the VAD run (see %s); they are left out", stats["failed"],
                       paths.failures)
    return paths


def _load(items, run_paths, own_run: bool):
    """Scored items for the labelled spans that have stored probabilities (hop size from the run)."""
    from ..runner.blobs import iter_index, read
    from .probs import decode
    from .scoring import scored

    stored = {(e["audio_filepath"], float(e["offset"] or 0)): (sp, e) for sp, _, e in iter_index(run_paths, "probs")}
    out, hops, missing = [], set(), []
    for it in items:
        found = stored.get(it.key)
        if found is None:
            missing.append(it.key[0])
            continue
        sp, e = found
        hops.add(e["hop_size"])
        probs = decode(read(sp.blob("probs"), e), e["dtype"])
        name = os.path.basename(it.key[0]) + (f"@{it.key[1]:g}" if it.key[1] else "")
        out.append(scored(name, probs, e["duration_s"], e["offset_s"], it.speech))
    if missing:
        hint = (" (TUNE_DIR/vad_run was made for other files, or they failed there: a new TUNE_DIR runs the model "
                "on the current ones)" if own_run else "")
        logger.warning("%d labelled file(s) have no stored probabilities and are left out%s: %s", len(missing), hint,
                       ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else ""))
    return out, hops


def cmd_tune(args) -> int:
    from ..config import load_yaml
    from ..errors import ConfigError
    from ..paths import RunPaths
    from . import scoring as sc
    from .labels import read_labelled

    grid = sc.check_grid(load_yaml(args.grid), args.grid) if args.grid else dict(sc.DEFAULT_GRID)  # before any work
    items, unlabelled = read_labelled(args.labelled)
    if unlabelled:
        logger.warning("%d audio file(s) have no label file (NAME.rttm or NAME.scv) and are left out: %s",
                       len(unlabelled), ", ".join(unlabelled[:5]) + (" ..." if len(unlabelled) > 5 else ""))
    os.makedirs(args.tune_dir, exist_ok=True)
    run_paths = (RunPaths(args.probs_from) if args.probs_from
                 else _model_run(items, args.tune_dir, args.hop_size, args.workers, not args.no_progress))
    scored_items, hops = _load(items, run_paths, not args.probs_from)
    if not scored_items:
        raise ConfigError(f"{args.labelled}: no labelled file has stored probabilities in {run_paths.root}")
    if len(hops) > 1:
        raise ConfigError(f"{run_paths.root}: probabilities stored with several hop sizes {sorted(hops)}")
    base = {"hop_size": hops.pop()}
    configs = sc.option_sets(grid, base)
    if not configs:
        raise ConfigError(f"{args.grid}: the grid holds no valid option set")
    default_cfg = sc.option_sets({}, base)[0]
    logger.info("scoring %d option set(s) on %d file(s)", len(configs), len(scored_items))
    matrix = sc.score_matrix(scored_items, configs + [default_cfg])
    default_counts, matrix = matrix[:, -1], matrix[:, :-1]
    result = _summarise(args, scored_items, configs, grid, matrix, default_counts, default_cfg)
    _write_outputs(args.tune_dir, result, scored_items, configs, grid, matrix, default_counts)
    print(_format(result, args.tune_dir))
    return 0


def _summarise(args, items, configs, grid, matrix, default_counts, default_cfg) -> dict:
    from .scoring import best_index, cross_validate, importance, objective, prf

    pooled = matrix.sum(axis=0)
    scores = np.array([objective(c, args.objective) for c in pooled])
    best = best_index(pooled, args.objective)
    result = {
        "files": len(items), "option_sets": len(configs), "objective": args.objective, "grid": grid,
        "default": _scores(default_counts.sum(axis=0), args.objective),
        "best": _scores(pooled[best], args.objective), "best_index": best,
        "best_options": {k: getattr(configs[best], k) for k in grid},
        "importance": importance(configs, list(grid), scores),
    }
    k = min(args.folds, len(items))
    if k >= 2:
        held, chosen = cross_validate(matrix, args.objective, k)
        result["cv"] = {"folds": k, **_scores(held, args.objective),
                        "chosen": [{key: getattr(configs[j], key) for key in grid} for j in chosen]}
    result["per_file"] = [{"file": it.name, "default": prf(default_counts[i]), "best": prf(matrix[i, best])}
                          for i, it in enumerate(items)]
    return result


def _scores(c, name: str) -> dict:
    from .scoring import objective, prf

    p, r, f1 = prf(c)
    return {"precision": round(p, 4), "recall": round(r, 4), "f1": round(f1, 4), name: round(objective(c, name), 4)}


def _write_outputs(tune_dir, result, items, configs, grid, matrix, default_counts) -> None:
    import yaml

    from ..manifest import dumps, write_bytes_atomic
    from .scoring import objective, prf

    header = (f"# amela vad tune: best {result['objective']} {result['best'][result['objective']]:.4f} on "
              f"{result['files']} file(s) (default options {result['default'][result['objective']]:.4f})")
    if "cv" in result:
        header += f"; {result['cv']['folds']}-fold cross-validated {result['cv'][result['objective']]:.4f}"
    best = {"hop_size": configs[result["best_index"]].hop_size, **result["best_options"]}
    text = header + "\n" + yaml.safe_dump(best, sort_keys=False)
    write_bytes_atomic(os.path.join(tune_dir, "best.yaml"), text.encode())
    pooled = matrix.sum(axis=0)
    rows = sorted(range(len(configs)), key=lambda j: -objective(pooled[j], result["objective"]))
    extra = [result["objective"]] if result["objective"] != "f1" else []
    lines = [",".join([*grid, "precision", "recall", "f1", *extra])]
    for j in rows:
        p, r, f1 = prf(pooled[j])
        values = ["" if getattr(configs[j], k) is None else f"{getattr(configs[j], k):g}" for k in grid]
        score = [f"{objective(pooled[j], result['objective']):.4f}"] if extra else []
        lines.append(",".join([*values, f"{p:.4f}", f"{r:.4f}", f"{f1:.4f}", *score]))
    write_bytes_atomic(os.path.join(tune_dir, "tune_results.csv"), ("\n".join(lines) + "\n").encode())
    lines = ["file,default_precision,default_recall,default_f1,best_precision,best_recall,best_f1"]
    lines += [",".join([f["file"], *(f"{v:.4f}" for v in f["default"]), *(f"{v:.4f}" for v in f["best"])])
              for f in result["per_file"]]
    write_bytes_atomic(os.path.join(tune_dir, "tune_per_file.csv"), ("\n".join(lines) + "\n").encode())
    write_bytes_atomic(os.path.join(tune_dir, "tune_summary.json"), dumps(result))
    write_bytes_atomic(os.path.join(tune_dir, "tune_report.png"), _plot(result, configs, grid, pooled))


def _plot(result, configs, grid, pooled) -> bytes:
    """Left: the objective over the two options that move it most (best over the others in each cell).
    Right: per-file F1, default options vs the best."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    from .scoring import objective

    name = result["objective"]
    scores = np.array([objective(c, name) for c in pooled])
    keys = [k for k, _ in result["importance"]][:2]
    fig = Figure(figsize=(13, 4.5), dpi=100)
    ax = fig.add_subplot(1, 2, 1)
    label = lambda v: "none" if v is None else f"{v:g}"  # noqa: E731
    if len(keys) == 2:
        xs, ys = [_values(grid, configs, keys[0]), _values(grid, configs, keys[1])]
        table = np.full((len(ys), len(xs)), np.nan)
        for cfg, s in zip(configs, scores):
            i, j = ys.index(getattr(cfg, keys[1])), xs.index(getattr(cfg, keys[0]))
            table[i, j] = s if np.isnan(table[i, j]) else max(table[i, j], s)
        im = ax.imshow(table, origin="lower", aspect="auto", cmap="viridis")
        for (i, j), v in np.ndenumerate(table):
            if not np.isnan(v):
                ax.text(j, i, f"{v:.3f}", ha="center", va="center", fontsize=7, color="white")
        ax.set_xticks(range(len(xs)), [label(v) for v in xs], fontsize=8)
        ax.set_yticks(range(len(ys)), [label(v) for v in ys], fontsize=8)
        ax.set_xlabel(keys[0])
        ax.set_ylabel(keys[1])
        fig.colorbar(im, ax=ax, label=name)
    elif keys:
        xs = _values(grid, configs, keys[0])
        best = [max(s for c, s in zip(configs, scores) if getattr(c, keys[0]) == v) for v in xs]
        ax.plot(range(len(xs)), best, marker="o")
        ax.set_xticks(range(len(xs)), [label(v) for v in xs])
        ax.set_xlabel(keys[0])
        ax.set_ylabel(name)
    cv = f", {result['cv']['folds']}-fold CV {result['cv'][name]:.3f}" if "cv" in result else ""
    ax.set_title(f"{name}: best {result['best'][name]:.3f}{cv}, default {result['default'][name]:.3f}", fontsize=10)
    ax = fig.add_subplot(1, 2, 2)
    files = result["per_file"]
    x = np.arange(len(files))
    ax.bar(x - 0.2, [f["default"][2] for f in files], 0.4, label="default options", color="#9aa5b1")
    ax.bar(x + 0.2, [f["best"][2] for f in files], 0.4, label="best options", color="#3b75af")
    ax.set_xticks(x, [f["file"] for f in files], rotation=70, fontsize=6)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("F1 per file")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    out = io.BytesIO()
    fig.savefig(out, format="png")
    return out.getvalue()


def _values(grid, configs, key) -> list:
    seen = []
    for cfg in configs:
        v = getattr(cfg, key)
        if v not in seen:
            seen.append(v)
    return sorted(seen, key=lambda v: -1.0 if v is None else v)


def _format(result: dict, tune_dir: str) -> str:
    name = result["objective"]
    fmt = lambda s: f"P {s['precision']:.3f}  R {s['recall']:.3f}  F1 {s['f1']:.3f}"  # noqa: E731
    lines = [f"{result['files']} labelled file(s), {result['option_sets']} option sets, objective {name}",
             f"  default options:   {fmt(result['default'])}",
             f"  best (in-sample):  {fmt(result['best'])}   {result['best_options']}"]
    if "cv" in result:
        lines.append(f"  {result['cv']['folds']}-fold cross-validated: {fmt(result['cv'])}   "
                     "(expect this on new data, not the in-sample best)")
    lines.append("  most important: " + ", ".join(f"{k} ({v:+.3f})" for k, v in result["importance"][:3]))
    lines.append(f"  best options: {os.path.join(tune_dir, 'best.yaml')} (use with --config)")
    return "\n".join(lines)
