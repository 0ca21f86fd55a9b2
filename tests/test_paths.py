"""RunPaths is the one namer of run-directory files: the names it gives, and no other module spelling them out."""
import ast
from pathlib import Path

from amela import paths as paths_mod
from amela.paths import SHARD_ATTEMPTS, SHARD_DONE, SHARD_STATS, PipelinePaths, RunPaths, shard_dir_name

PACKAGE = Path(paths_mod.__file__).parent


def _strings(tree: ast.AST) -> list[ast.Constant]:
    """Whole string literals (f-string pieces excluded: "{stage}.jsonl" has the piece ".jsonl", which is no name)."""
    pieces = {id(v) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr) for v in node.values}
    return [n for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in pieces]


def _file_names() -> set[str]:
    """The file and folder names paths.py spells out whole (a dot, a %-pattern, or a marker like DONE)."""
    names = set()
    for node in _strings(ast.parse((PACKAGE / "paths.py").read_text())):
        v = node.value
        if v and not any(c.isspace() for c in v) and ("." in v or "%" in v or (v.isupper() and len(v) > 3)):
            names.add(v)
    return names


def test_no_module_but_paths_names_a_run_directory_file():
    names = _file_names()
    # the names this issue moved here must be among them (the scan below is only as good as this set)
    assert {"ATTEMPT", ".slurm_jobs.lock", "faulthandler.log", "attempts.jsonl", "report.html", ".status_cache.json",
            "resubmissions.jsonl", "plan.json", "stats.json", "DONE", "STOPPED_ITEMS.json", ".report_sha256.json",
            "merge.sbatch", "pipeline.yaml"} <= names
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == PACKAGE / "paths.py":
            continue
        for node in _strings(ast.parse(path.read_text(), str(path))):
            if node.value in names:
                offenders.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}: {node.value!r}")
    assert not offenders, "name these files through amela.paths (RunPaths/ShardPaths/PipelinePaths):\n" + \
        "\n".join(offenders)


def test_run_paths_names(tmp_path):
    rp = RunPaths(tmp_path)
    assert rp.jobs_lock == tmp_path / ".slurm_jobs.lock"
    assert rp.slurm_jobs == tmp_path / "slurm_jobs.json"
    assert rp.status_cache == tmp_path / ".status_cache.json"
    assert rp.html_report == tmp_path / "report.html" == PipelinePaths(tmp_path).html_report
    assert rp.model_hashes == tmp_path / ".report_sha256.json"
    assert rp.resubmissions == tmp_path / "resubmissions.jsonl"
    assert rp.submitit_dir == tmp_path / "submitit"
    assert rp.submitit_step_dir == tmp_path / "logs" / "submitit"
    assert rp.faulthandler_log == tmp_path / "logs" / "faulthandler.log"
    assert rp.array_script("vad") == tmp_path / "slurm" / "vad.sbatch"
    assert rp.merge_script == tmp_path / "slurm" / "merge.sbatch"
    assert rp.prepare_script == tmp_path / "slurm" / "prepare.sbatch"
    assert rp.merge_log_pattern == str(tmp_path / "logs" / "merge_%j.out")
    assert rp.prepare_log_pattern == str(tmp_path / "logs" / "prepare_%j.out")
    assert rp.slurm_log_pattern("vad") == str(tmp_path / "logs" / "vad_%A_%a.out")
    # an array task's log, as sbatch expands the pattern for job 17 task 3
    assert rp.slurm_log("vad", "17_3") == Path(rp.slurm_log_pattern("vad").replace("%A", "17").replace("%a", "3"))
    assert (rp.pilot_sample, rp.pilot_sizing) == (tmp_path / "sample.jsonl", tmp_path / "sizing.json")


def test_shard_paths_names_and_the_plain_string_names_agree(tmp_path):
    sp = RunPaths(tmp_path).shard(12)
    assert sp.dir == tmp_path / "shards" / "00012" == tmp_path / "shards" / shard_dir_name(12)
    assert (sp.attempt.name, sp.attempts.name, sp.stopped.name) == ("ATTEMPT", "attempts.jsonl", "STOPPED_ITEMS.json")
    # amela status and attempts.py join these to strings; they must name the files ShardPaths names
    assert (sp.done.name, sp.stats.name, sp.attempts.name) == (SHARD_DONE, SHARD_STATS, SHARD_ATTEMPTS)
