"""Audio the VAD tests build themselves: the bundled espeak-ng samples, cut, mixed and re-encoded in tmp dirs."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile

from amela.vad.config import VadConfig
from amela.vad.stage import VadStage

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "amela" / "data" / "samples"
SR = 16000


def write(path: Path, audio: np.ndarray, rate: int = SR, subtype: str | None = None, fmt: str | None = None) -> str:
    soundfile.write(str(path), audio, rate, subtype=subtype, format=fmt)
    return str(path)


def record(path, **extra) -> dict:
    return {"audio_filepath": str(path), "duration": soundfile.info(str(path)).duration, **extra}


@pytest.fixture(scope="session")
def speech16() -> np.ndarray:
    """About 20 s of int16 speech at 16 kHz with pauses, leading silence and a little noise (deterministic)."""
    clean, sr = soundfile.read(str(SAMPLES / "phrases_clean.flac"), dtype="int16")
    noisy, sr2 = soundfile.read(str(SAMPLES / "phrases_noisy.ogg"), dtype="int16")
    assert sr == sr2 == SR
    rng = np.random.default_rng(7)
    silence = (rng.standard_normal(SR) * 30).astype(np.int16)
    return np.concatenate([silence, clean, silence[: SR // 2], noisy]).astype(np.int16)


@pytest.fixture(scope="session")
def speech_wav(tmp_path_factory, speech16) -> str:
    return write(tmp_path_factory.mktemp("speech") / "speech16.wav", speech16, subtype="PCM_16")


@pytest.fixture(scope="module")
def stage() -> VadStage:
    s = VadStage(VadConfig())
    s.setup()
    yield s
    s.teardown()


def run_stage(stage: VadStage, records: list[dict]) -> list:
    out = stage.process(records)
    assert len(out) == len(records)
    return [getattr(o, "record", o) for o in out]


def frames_from_segments(segments, frame_s: float, offset: float = 0.0) -> set[int]:
    """Frame indices covered by frame-aligned segments."""
    frames = set()
    for start, end in segments:
        frames.update(range(int(round((start - offset) / frame_s)), int(round((end - offset) / frame_s))))
    return frames
