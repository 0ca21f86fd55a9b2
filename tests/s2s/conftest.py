"""Tiny legacy-format S2S models and audio, built once per session (nothing is downloaded)."""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

LAYER = 2
N_UNITS = 12
DURATIONS = (1.0, 1.5, 2.5, 0.75)  # seconds; audio/a/f0.wav ... plus one in a nested folder


def _tone(n: int, seed: int) -> np.ndarray:
    """Speech-like enough for a random model: a few tones plus noise, amplitude well inside [-1, 1]."""
    rng = np.random.RandomState(seed)
    t = np.arange(n) / 16000.0
    sig = sum(0.2 * np.sin(2 * np.pi * f * t + rng.rand() * 6) for f in rng.uniform(100, 900, 3))
    return (sig * (0.5 + 0.5 * np.sin(2 * np.pi * 2 * t)) + 0.05 * rng.randn(n)).astype(np.float32)


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    import soundfile as sf
    import torch

    from amela.s2s.testing import build_hubert, build_kmeans, build_vocoder

    root = tmp_path_factory.mktemp("s2s")
    models = root / "models"
    models.mkdir()
    writer = build_hubert(str(models / "hubert.pt"))
    audio = root / "audio"
    records = []
    for i, d in enumerate(DURATIONS):
        sub = audio / ("a" if i < 3 else "b/c")
        sub.mkdir(parents=True, exist_ok=True)
        path = sub / f"f{i}.wav"
        sf.write(path, _tone(int(d * 16000), i), 16000)
        records.append({"audio_filepath": str(path), "duration": d, "text": f"utterance {i}"})
    with torch.no_grad():
        feats = torch.cat([writer_features(writer, read(r["audio_filepath"])) for r in records])
    km = build_kmeans(feats.numpy(), N_UNITS, str(models / "km.bin"), str(models / "km.npy"))
    voc_cfg = build_vocoder(str(models / "g_00000100"), str(models / "config.json"), N_UNITS)
    manifest = root / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in records))
    return SimpleNamespace(root=root, models=models, hubert=str(models / "hubert.pt"), writer=writer,
                           km=km, km_pickle=str(models / "km.bin"), km_npy=str(models / "km.npy"),
                           vocoder=str(models / "g_00000100"), vocoder_config=str(models / "config.json"),
                           voc_cfg=voc_cfg, audio=audio, records=records, manifest=manifest)


def read(path: str):
    import soundfile as sf
    import torch

    return torch.from_numpy(sf.read(path, dtype="float32")[0])


def writer_features(writer, wav, layer: int = LAYER):
    """The writer model's own forward, one file at a time (what textlesslib did): the reference features."""
    import torch

    with torch.no_grad():
        x, _ = writer.extract_features(wav.view(1, -1), padding_mask=None, mask=False, output_layer=layer)
    return x[0]


def reference_units(tiny, wav, chunk_samples: int | None = None) -> list[int]:
    """Frame units computed independently of AMELA: writer features per chunk -> sklearn's KMeans.predict."""
    chunk_samples = chunk_samples or len(wav)
    out: list[int] = []
    for start in range(0, len(wav), chunk_samples):
        piece = wav[start:start + chunk_samples]
        if len(piece) >= 400:
            out += tiny.km.predict(writer_features(tiny.writer, piece).numpy().astype(np.float32)).tolist()
    return out


def stage_config(tiny, **overrides):
    from amela.config import from_dict
    from amela.s2s.config import S2SConfig

    base = {"dense": tiny.hubert, "layer": LAYER, "kmeans": tiny.km_npy, "vocoder": tiny.vocoder,
            "vocoder_config": tiny.vocoder_config, "device": "cpu"}
    return from_dict(S2SConfig, {**base, **overrides}, "test")


def make_stage(tiny, out_dir: Path | None = None, **overrides):
    from amela.s2s.stage import S2SStage
    from amela.stage import FileSink

    stage = S2SStage(stage_config(tiny, **overrides), FileSink(str(out_dir)) if out_dir else None)
    stage.setup()
    return stage
