"""Real runs for the report tests: the tests' echo stage over real audio files (some items fail, one shard is
interrupted by SIGTERM and resumed) and TEN-VAD over the bundled samples."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.support.helpers import STAGE, amela

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "amela" / "data" / "samples"
N_ITEMS, N_SHARDS = 12, 3
FAIL_ON = ("a03.wav", "a07.wav")  # two items fail with messages that differ only by the file: one reason


def tone(seconds: float, freq: float, sr: int = 16000) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * freq * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 1.5 * t))).astype(np.float32)


def audio_manifest(root: Path) -> Path:
    (root / "audio").mkdir(parents=True)
    lines = []
    for i in range(N_ITEMS):
        path = root / "audio" / f"a{i:02d}.wav"
        seconds = 1.0 + (i * 7) % 9
        sf.write(path, tone(seconds, 200 + 40 * i), 16000)
        lines.append(json.dumps({"audio_filepath": str(path), "duration": seconds}))
    lines.append(json.dumps({"audio_filepath": "relative.wav", "duration": 1.0}))  # rejected: not absolute
    manifest = root / "in.jsonl"
    manifest.write_text("\n".join(lines) + "\n")
    return manifest


def echo_args(manifest, run, *extra):
    return ["run", STAGE, str(manifest), "-o", str(run), "--shards", str(N_SHARDS), "--workers", "1",
            "--batch-size", "1", "--on-invalid", "skip", "--fail-on", ",".join(FAIL_ON), "--sleep-s", "0.25", *extra]


@pytest.fixture(scope="session")
def echo_run(tmp_path_factory):
    """(run dir, report text of the interrupted state). Shard attempts: one SIGTERM-interrupted, then finished."""
    root = tmp_path_factory.mktemp("echo")
    manifest, run = audio_manifest(root), root / "run"
    env = {**os.environ, "AMELA_PROGRESS_INTERVAL_S": "3600"}
    proc = subprocess.Popen([sys.executable, "-m", "amela", *echo_args(manifest, run)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.time() + 120
    while not list(run.glob("shards/*/output.partial")) or not any(
            p.stat().st_size for p in run.glob("shards/*/output.partial")):
        assert time.time() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, out + err
    (root / "status.txt").write_text(amela("status", run, check=1, env=env).stdout)
    partial = amela("report", run, "-o", root / "partial.html", check=0, env=env)
    assert "report:" in partial.stdout
    amela(*echo_args(manifest, run), check=1, env=env)  # resume; exit 1: items failed
    return run, (root / "partial.html").read_text()


@pytest.fixture(scope="session")
def vad_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("vad") / "run"
    amela("run", "vad", SAMPLES, "-o", run, "--no-progress", check=0,
          env={**os.environ, "AMELA_PROGRESS_INTERVAL_S": "3600"})
    return run
