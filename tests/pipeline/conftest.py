"""Pipeline fixtures: the bundled sample speech, a tiny NeMo CTC model and tiny legacy HuBERT + k-means, built here."""
from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace

import pytest

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "amela" / "data" / "samples"
LAYER = 2


@pytest.fixture(scope="session")
def models(tmp_path_factory):
    import soundfile as sf
    import torch

    from amela.asr.tiny import build_ctc
    from amela.s2s.testing import build_hubert, build_kmeans

    root = tmp_path_factory.mktemp("pipeline_models")
    ctc = str(root / "tiny_ctc.nemo")
    build_ctc().save_to(ctc)
    writer = build_hubert(str(root / "hubert.pt"))
    wav, _ = sf.read(str(SAMPLES / "phrases_clean.flac"), dtype="float32")
    with torch.no_grad():
        feats, _ = writer.extract_features(torch.from_numpy(wav).view(1, -1), padding_mask=None, mask=False,
                                           output_layer=LAYER)
    build_kmeans(feats[0].numpy(), 8, str(root / "km.bin"), str(root / "km.npy"))
    return SimpleNamespace(ctc=ctc, hubert=str(root / "hubert.pt"), kmeans=str(root / "km.npy"))


def write_pipeline(path: Path, models, asr_text_key: str = "pred_text", shards: int = 2) -> Path:
    """VAD (segments) -> filter -> ASR -> S2S encode over the bundled samples."""
    # CPU tasks of one CPU: the local test cluster has 2 CPUs and no GPU
    doc = {"slurm": {"gpus_per_task": 0, "cpus_per_task": 1}, "steps": [
        {"name": "vad", "stage": "vad", "input": str(SAMPLES), "shards": shards, "workers": 1,
         "options": {"segments": True, "min_silence_s": 0.3, "max_segment_s": 20}},
        {"name": "asr", "stage": "asr", "input": "vad.segments", "where": "duration >= 0.5", "shards": shards,
         "workers": 1, "options": {"model": models.ctc, "text_key": asr_text_key, "device": "cpu"}},
        {"name": "units", "stage": "s2s", "input": "asr", "shards": shards, "workers": 1,
         "options": {"mode": "encode", "dense": models.hubert, "layer": LAYER, "kmeans": models.kmeans,
                     "device": "cpu"}},
    ]}
    path.write_text(json.dumps(doc))  # JSON is YAML
    return path


def records(path) -> list[dict]:
    with open(path) as fh:
        return [json.loads(line) for line in fh if line.strip()]


def env_with_repo() -> dict:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
