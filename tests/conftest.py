import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent


@pytest.fixture
def amela_cmd():
    """The installed console script (a fresh process, as users and SLURM tasks run it)."""
    return [str(VENV_BIN / "amela")]


@pytest.fixture(autouse=True)
def _quiet_progress(monkeypatch):
    monkeypatch.setenv("AMELA_PROGRESS_INTERVAL_S", "3600")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
