"""Build model files the way their 2021 tools saved them, for tests and benchmarks (nothing is downloaded).

- HuBERT: a HubertModel built by the running fairseq from fairseq's own config classes, saved as fairseq's trainer
  saved checkpoints in 2021: `cfg` a plain dict (OmegaConf.to_container), `task_state` holding the pickled
  Dictionary, label_rate written as 50.0, weight-norm parameters under the old torch names (weight_g / weight_v).
- k-means: an sklearn KMeans fitted on features, saved with joblib (as fairseq's learn_kmeans did) and as .npy.
- unit HiFi-GAN: fairseq's CodeGenerator with a JSON config, saved as `{"generator": state_dict}`.
"""
from __future__ import annotations

import json
import math

from .compat import import_fairseq


# HuBERT's conv front end: 400-sample receptive field, 320-sample hop (50 frames/s at 16 kHz).
def conv_layers(channels: int) -> str:
    return f"[({channels}, 10, 5)] + [({channels}, 3, 2)] * 4 + [({channels}, 2, 2)] * 2"


BASE = dict(layers=12, dim=768, ffn=3072, heads=12, conv_channels=512, conv_pos=128, conv_pos_groups=16)
TINY = dict(layers=2, dim=32, ffn=64, heads=2, conv_channels=32, conv_pos=16, conv_pos_groups=4)


def old_weight_norm_names(state_dict: dict) -> dict:
    """Rename parametrized weight-norm keys to the names torch's old weight_norm hook used (g: magnitude, v:
    direction); keys already in the old layout pass through."""
    out = {}
    for k, v in state_dict.items():
        k = k.replace("parametrizations.weight.original0", "weight_g")
        k = k.replace("parametrizations.weight.original1", "weight_v")
        out[k] = v
    return out


def build_hubert(path: str, seed: int = 0, int_fields_as_float: tuple[str, ...] = ("encoder_layers",),
                 extractor_mode: str = "default", n_labels: int = 100, **size):
    """Write a 2021-style HuBERT checkpoint to `path`; returns the writer model (eval mode)."""
    import torch

    import_fairseq()
    from fairseq.data import Dictionary
    from fairseq.dataclass.configs import FairseqConfig
    from fairseq.models.hubert.hubert import HubertConfig, HubertModel
    from fairseq.tasks.hubert_pretraining import HubertPretrainingConfig
    from omegaconf import OmegaConf, open_dict

    s = {**TINY, **size}
    model_cfg = HubertConfig(
        label_rate=50.0, extractor_mode=extractor_mode, encoder_layers=s["layers"], encoder_embed_dim=s["dim"],
        encoder_ffn_embed_dim=s["ffn"], encoder_attention_heads=s["heads"],
        conv_feature_layers=conv_layers(s["conv_channels"]), conv_pos=s["conv_pos"],
        conv_pos_groups=s["conv_pos_groups"], final_dim=min(256, s["dim"]),
    )
    task_cfg = HubertPretrainingConfig(data="/datasets/librispeech/manifests", labels=["km"], label_rate=50.0,
                                       sample_rate=16000, label_dir="/datasets/librispeech/labels")
    dictionary = Dictionary()
    for i in range(n_labels):  # the k-means units of the previous iteration
        dictionary.add_symbol(str(i))
    torch.manual_seed(seed)
    model = HubertModel(model_cfg, task_cfg, [dictionary]).eval()
    with torch.no_grad():  # layer norms and pos_conv off their initial values, so a re-initialised one shows
        for name, p in model.named_parameters():
            if "layer_norm" in name or "pos_conv" in name:
                p.add_(0.1 * torch.randn_like(p))

    full = OmegaConf.structured(FairseqConfig)
    with open_dict(full):
        full.task = OmegaConf.structured(task_cfg)
        full.model = OmegaConf.structured(model_cfg)
    cfg = OmegaConf.to_container(full, resolve=True, enum_to_str=True)
    cfg["task"]["_name"], cfg["model"]["_name"] = "hubert_pretraining", "hubert"
    cfg["task"]["label_rate"] = cfg["model"]["label_rate"] = 50.0
    for key in int_fields_as_float:  # as some 2021 configs carried them
        cfg["model"][key] = float(cfg["model"][key])
    state = {
        "args": None,
        "cfg": cfg,
        "model": old_weight_norm_names(model.state_dict()),
        "criterion": None,
        "optimizer_history": [{"criterion_name": "HubertCriterion", "optimizer_name": "FairseqAdam",
                               "lr_scheduler_state": {"best": None}, "num_updates": 400000}],
        "task_state": {"dictionaries": [dictionary]},
        "extra_state": {"epoch": 1, "previous_training_time": 1234.5},
        "last_optimizer_state": None,
    }
    torch.save(state, path)
    return model


def build_kmeans(features, n_clusters: int, pickle_path: str, npy_path: str | None = None, seed: int = 0):
    """Fit sklearn KMeans on (N, D) features; save it with joblib (and the centroids as .npy). Returns the model."""
    import joblib
    import numpy as np
    from sklearn.cluster import KMeans

    km = KMeans(n_clusters=n_clusters, n_init=1, random_state=seed).fit(np.asarray(features, dtype=np.float32))
    joblib.dump(km, pickle_path)
    if npy_path:
        np.save(npy_path, km.cluster_centers_.astype(np.float32))
    return km


def vocoder_config(num_units: int, channels: int = 64, dur_predictor: bool = True, **extra) -> dict:
    cfg = {
        "resblock": "1", "upsample_rates": [5, 4, 4, 2, 2], "upsample_kernel_sizes": [11, 8, 8, 4, 4],
        "upsample_initial_channel": channels, "resblock_kernel_sizes": [3, 7],
        "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5]], "num_embeddings": num_units, "embedding_dim": 16,
        "model_in_dim": 16, "sampling_rate": 16000, "code_hop_size": 320,
    }
    if dur_predictor:
        cfg["dur_predictor_params"] = {"encoder_embed_dim": 16, "var_pred_hidden_dim": 16,
                                       "var_pred_kernel_size": 3, "var_pred_dropout": 0.5}
    cfg.update(extra)
    return cfg


def build_vocoder(checkpoint_path: str, config_path: str, num_units: int, seed: int = 0, **cfg_extra):
    """Write a unit HiFi-GAN generator checkpoint + config.json; returns the config."""
    import torch

    from .vocoder import _generator_class

    cfg = vocoder_config(num_units, **cfg_extra)
    torch.manual_seed(seed)
    gen = _generator_class()(cfg)
    with torch.no_grad():
        for p in gen.parameters():  # default init gives near-silence; any audible signal makes a better test
            p.add_(0.05 * torch.randn_like(p))
    torch.save({"generator": old_weight_norm_names(gen.state_dict())}, checkpoint_path)
    with open(config_path, "w", encoding="utf-8") as fh:
        json.dump(cfg, fh)
    return cfg


def hop_samples(cfg: dict) -> int:
    return math.prod(cfg["upsample_rates"])
