"""Layers import only downward: read every module's imports (ast, function-level ones included) and check the rules.

The layers, from the bottom up (docs/adding-a-stage.md):
- shared pieces: amela/*.py (manifest, paths, config, errors, locks, stage contract, ...);
- stages: amela/vad, amela/asr, amela/s2s, amela/quality (what to do with a batch of records);
- the runner: amela/runner (manifests in, shard files, stats, markers and merged outputs out);
- executors: amela/executors (where the runner runs a shard: local pool, sbatch, submitit);
- on top: amela/pipeline, amela/planner, amela/report;
- the CLI: amela/cli.py (the dispatcher), amela/cli_common.py (what command modules share with it), and the command
  modules: `__main__`, `cli` and `*_cli` modules of any package, and COMMAND_HELPERS below. They live beside what
  they drive (`amela vad tune` next to the VAD) but belong to the CLI layer: they may import any layer except the
  dispatcher amela/cli.py (which imports them), and no module below the CLI may import them.

Rules checked (a module imports a package when it imports the package or anything in it):
- a stage module imports no runner, executors, pipeline, planner, report or CLI module;
- a runner module imports no executors, pipeline, planner, report or CLI module;
- an executor module imports no pipeline, planner, report or CLI module;
- a shared piece imports no stage, runner, executors, pipeline, planner, report or CLI module (amela/__init__.py
  excepted: `amela.submit` is the public entry point to submitit);
- only `__main__` modules import the dispatcher amela.cli;
- no import cycles among amela modules (function-level imports count: they are dependencies all the same).
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "amela"
STAGES = ("amela.vad", "amela.asr", "amela.s2s", "amela.quality")
TOP = ("amela.pipeline", "amela.planner", "amela.report")
CLI = ("amela.cli", "amela.cli_common")
# Command-side modules not named *cli: each is a command or reads a finished run for commands, never a stage's code.
COMMAND_HELPERS = {
    "amela.vad.tune": "`amela vad tune`: its parser and command; runs the VAD as an ordinary local run",
    "amela.vad.stored": "reads a finished VAD run's stored probabilities for `amela vad probs|resegment|tune`",
}
# Cycles inside one package's lazy imports, left for their packages' own clean-up (each listed once, as a set).
KNOWN_CYCLES: list[set[str]] = []


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def imports(name: str, path: Path, known: set[str]) -> list[tuple[str, int]]:
    """(imported amela module, line) for every import in the file, resolved to a module (or package) that exists:
    `from amela.runner import shardio` imports amela.runner.shardio, `from ..runner import locked` amela.runner."""
    package = name if is_package(path) else name.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names if a.name.split(".")[0] == "amela"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "amela":
                continue
            subs = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in known]
            if len(subs) < len(node.names):  # names defined in the module itself: the module is imported
                subs.append(target)
            out += [(s, node.lineno) for s in subs]
    return out


def in_any(module: str, packages) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


def is_command(module: str) -> bool:
    last = module.rpartition(".")[2]
    return last in ("__main__", "cli") or last.endswith("_cli") or module in COMMAND_HELPERS or module in CLI


def layer(module: str) -> str:
    if is_command(module):
        return "cli"
    for name, packages in (("stage", STAGES), ("runner", ("amela.runner",)), ("executors", ("amela.executors",)),
                           ("top", TOP)):
        if in_any(module, packages):
            return name
    return "shared"


FORBIDDEN = {  # layer -> the layers it must not import
    "shared": {"stage", "runner", "executors", "top", "cli"},
    "stage": {"runner", "executors", "top", "cli"},
    "runner": {"executors", "top", "cli"},
    "executors": {"top", "cli"},
    "top": {"cli"},
}


def graph() -> dict[str, list[tuple[str, int]]]:
    mods = modules()
    known = set(mods)
    return {name: imports(name, path, known) for name, path in mods.items()}


def violations(edges: dict[str, list[tuple[str, int]]]) -> list[str]:
    files = {m: p.relative_to(ROOT.parent) for m, p in modules().items()}
    out = []
    for module, targets in edges.items():
        mine = layer(module)
        for target, line in targets:
            theirs = layer(target)
            path = f"{files.get(module, module)}:{line}"
            if module != "amela" and theirs in FORBIDDEN.get(mine, ()):
                out.append(f"{path}: {mine} module {module} imports {theirs} module {target}")
            elif target == "amela.cli" and not module.endswith("__main__"):
                out.append(f"{path}: {module} imports the dispatcher amela.cli (use amela.cli_common)")
    return out


def cycles(edges: dict[str, list[tuple[str, int]]]) -> list[set[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    succ = {m: sorted({t for t, _ in ts if t in edges and t != m}) for m, ts in edges.items()}
    index, low, stack, on, found, counter = {}, {}, [], set(), [], [0]

    def visit(root):
        work = [(root, iter(succ[root]))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on.add(root)
        while work:
            node, it = work[-1]
            nxt = next(it, None)
            if nxt is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    comp = set()
                    while True:
                        m = stack.pop()
                        on.discard(m)
                        comp.add(m)
                        if m == node:
                            break
                    if len(comp) > 1:
                        found.append(comp)
            elif nxt not in index:
                index[nxt] = low[nxt] = counter[0]
                counter[0] += 1
                stack.append(nxt)
                on.add(nxt)
                work.append((nxt, iter(succ[nxt])))
            elif nxt in on:
                low[node] = min(low[node], index[nxt])

    for m in succ:
        if m not in index:
            visit(m)
    return found


def test_layers_import_only_downward():
    edges = graph()
    assert len(edges) > 100 and "amela.runner.shard" in edges  # the walk found the package
    bad = violations(edges)
    assert not bad, "imports against the layering (docs/adding-a-stage.md):\n" + "\n".join(bad)


def test_no_import_cycles():
    found = [c for c in cycles(graph()) if c not in KNOWN_CYCLES]
    assert not found, "import cycles among amela modules:\n" + "\n".join(" <-> ".join(sorted(c)) for c in found)


def test_command_helpers_exist():
    """A helper listed here that was renamed or removed must leave the list (else the list hides nothing real)."""
    mods = modules()
    assert set(COMMAND_HELPERS) <= set(mods)


def test_checker_sees_function_level_and_relative_imports(tmp_path):
    """The reader itself: a relative import inside a function, resolved to the module it names."""
    src = tmp_path / "amela" / "vad"
    src.mkdir(parents=True)
    (src / "x.py").write_text("def f():\n    from ..runner import shardio\n    from ..executors.local import run\n")
    known = {"amela.runner", "amela.runner.shardio", "amela.executors.local"}
    got = imports("amela.vad.x", src / "x.py", known)
    assert got == [("amela.runner.shardio", 2), ("amela.executors.local", 3)]
    assert violations({"amela.vad.x": got}) and layer("amela.vad.cli") == "cli" and layer("amela.vad.x") == "stage"
