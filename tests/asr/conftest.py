"""Shared fixtures: tiny NeMo models (built once per session, random weights, no download) and synthetic audio."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

RATE = 16000


def noise(seconds: float, seed: int, rate: int = RATE, gaps: tuple = ()) -> np.ndarray:
    """Deterministic noise bursts (a stand-in for speech) with exact silences at `gaps` [(start_s, end_s)]."""
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(int(seconds * rate)) * 0.1).astype(np.float32)
    for a, b in gaps:
        x[int(a * rate):int(b * rate)] = 0.0
    return x


def write_wav(path, samples, rate: int = RATE) -> str:
    sf.write(str(path), samples, rate)
    return str(path)


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """{'ctc', 'conformer_ctc', 'rnnt'} -> .nemo path."""
    from amela.asr.tiny import save_tiny_models

    return save_tiny_models(str(tmp_path_factory.mktemp("asr_models")))


@pytest.fixture(scope="session")
def ctc_model(tiny_models):
    """The restored tiny CTC model, for reference transcripts computed directly with model.transcribe()."""
    from nemo.collections.asr.models import ASRModel

    return ASRModel.restore_from(tiny_models["ctc"], map_location="cpu").eval()


def direct(model, arrays) -> list[str]:
    """Reference transcripts: each array alone through NeMo's own transcribe()."""
    return [model.transcribe([a], batch_size=1, verbose=False)[0].text for a in arrays]


@pytest.fixture(scope="session")
def corpus(tmp_path_factory):
    """12 WAVs of 0.5-9 s (varied lengths, some at 8 kHz and stereo) and their records, in a shuffled order."""
    root = tmp_path_factory.mktemp("asr_audio")
    rng = np.random.default_rng(7)
    records = []
    for i in range(12):
        seconds = float(rng.choice([0.5, 1.5, 2.0, 3.5, 5.0, 9.0]))
        rate = 8000 if i % 5 == 4 else RATE
        x = noise(seconds, seed=100 + i, rate=rate)
        if i % 4 == 3:
            x = np.stack([x, x * 0.5], axis=1)  # stereo: averaged by the stage
        path = write_wav(root / f"utt{i:02d}.wav", x, rate)
        records.append({"audio_filepath": path, "duration": seconds, "speaker": f"s{i % 3}"})
    return records
