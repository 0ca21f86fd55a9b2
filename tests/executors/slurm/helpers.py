"""Shared by the SLURM end-to-end tests: a small corpus, `amela` in a subprocess with the cluster's environment,
and waiting for what the jobs write."""
from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
SAMPLES = ROOT / "amela" / "data" / "samples"
ECHO = "tests.support.stages:EchoStage"
FAULTY = "tests.executors.slurm.stages:FaultyEchoStage"


def job_env(cluster, **extra) -> dict:
    """The environment jobs inherit (sbatch exports it): the tests' stages importable, no progress bars."""
    env = dict(cluster.env)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["AMELA_PROGRESS_INTERVAL_S"] = "3600"
    env.update({k: str(v) for k, v in extra.items()})
    return env


def amela(cluster, *args, check: int | None = 0, **extra_env) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "amela", *map(str, args)], capture_output=True, text=True,
                          env=job_env(cluster, **extra_env), timeout=300)
    if check is not None:
        assert proc.returncode == check, f"amela {' '.join(map(str, args))} -> {proc.returncode}\n" \
                                         f"{proc.stdout}\n{proc.stderr}"
    return proc


def submitted(stdout: str) -> tuple[list[str], str | None]:
    """(array job ids, merge job id) from `amela run --backend sbatch`'s output."""
    arrays = re.findall(r"submitted array job (\d+)", stdout)
    merge = re.search(r"submitted merge job (\d+)", stdout)
    return arrays, merge.group(1) if merge else None


def run_printed(cluster, command: str) -> str:
    """Run a command as a user would paste it (`[VAR=value ...] sbatch ...`); returns the job id sbatch printed."""
    words = shlex.split(command)
    env = job_env(cluster)
    while "=" in words[0] and not words[0].startswith("-"):
        key, _, value = words.pop(0).partition("=")
        env[key] = value
    proc = subprocess.run(words, capture_output=True, text=True, env=env, timeout=30)
    assert proc.returncode == 0, f"{command}\n{proc.stderr}"
    return re.search(r"(\d+)", proc.stdout).group(1)


def make_audio_corpus(path: Path, copies: int = 2) -> Path:
    """The sample recordings copied `copies` times next to `path`, as an absolute-path manifest."""
    import shutil

    import soundfile as sf

    lines = []
    for c in range(copies):
        for f in sorted(SAMPLES.iterdir()):
            target = path.parent / "audio" / f"{c}_{f.name}"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(f, target)
            lines.append(json.dumps({"audio_filepath": str(target), "duration": round(sf.info(str(f)).duration, 6)}))
    path.write_text("\n".join(lines) + "\n")
    return path


def make_echo_corpus(path: Path, n: int) -> Path:
    path.write_text("".join(json.dumps({"audio_filepath": f"/data/item{i}.wav", "duration": 1.0 + i % 3,
                                        "text": f"t{i}"}) + "\n" for i in range(n)))
    return path


def read_lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def wait_for_lines(path: Path, count: int, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not (path.exists() and len(path.read_bytes().splitlines()) >= count):
        assert time.monotonic() < deadline, f"{path} never got {count} line(s)"
        time.sleep(0.2)


def wait_until(predicate, what: str, timeout_s: float = 60, interval_s: float = 0.5):
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout_s} s waiting for {what}"
        time.sleep(interval_s)
