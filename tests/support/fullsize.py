"""Full-size models for the slow tests: built once per session by scripts/fullsize_models.py (random weights).

Set AMELA_FULLSIZE_MODELS=DIR to keep them between sessions (the script keeps files already in DIR).
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "fullsize_models.py"


def built(tmp_path_factory, *names: str):
    """Fixture body: yields build(...), then deletes the files it built in the temp folder (gigabytes, which pytest
    would otherwise keep for three sessions); a $AMELA_FULLSIZE_MODELS folder is left alone."""
    paths = build(tmp_path_factory, *names)
    yield paths
    if not os.environ.get("AMELA_FULLSIZE_MODELS"):
        for name in names:
            for f in fullsize_files(name, paths):
                if os.path.exists(f):
                    os.unlink(f)


def fullsize_files(name: str, paths: dict[str, str]) -> list[str]:
    return [paths[name]] + ([paths["vocoder_config"]] if name == "vocoder" else [])


def build(tmp_path_factory, *names: str) -> dict[str, str]:
    """{'parakeet': path, ...} for `names`, built (or kept) in $AMELA_FULLSIZE_MODELS or a session temp folder."""
    out = os.environ.get("AMELA_FULLSIZE_MODELS") or str(tmp_path_factory.getbasetemp() / "fullsize_models")
    cmd = [sys.executable, str(SCRIPT), out]
    for n in names:
        cmd += ["--only", n]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-4000:]
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import fullsize_models
    finally:
        sys.path.remove(str(SCRIPT.parent))
    return fullsize_models.paths(out)


def hub_cache(root: Path, repo: str, model_file: str) -> Path:
    """A Hugging Face cache as huggingface_hub lays it out: refs/main names the revision, snapshots/REV/FILE is a
    relative link to blobs/HASH (here the blob links to the built model instead of holding a 2.4 GB copy)."""
    rev = "8f3e7f1c0ffee0123456789abcdef0123456789a"
    repo_dir = root / ("models--" + repo.replace("/", "--"))
    (repo_dir / "refs").mkdir(parents=True)
    (repo_dir / "refs" / "main").write_text(rev)
    (repo_dir / "blobs").mkdir()
    blob = repo_dir / "blobs" / ("b" * 64)
    os.symlink(os.path.abspath(model_file), blob)
    snap = repo_dir / "snapshots" / rev
    snap.mkdir(parents=True)
    target = snap / (repo.split("/")[1] + ".nemo")
    os.symlink(os.path.join("..", "..", "blobs", blob.name), target)
    return target
