"""HuBERT feature reader: a legacy fairseq checkpoint -> features of transformer layer N, batched with padding masks.

Loading goes through fairseq 0.12.2 with the compat shims (scoped weights-only allowlist, int fields, weight-norm key
names, strict load). Batching keeps results equal to one-file-at-a-time inference: the convolutional front end runs
on each chunk unpadded (its first layer is a GroupNorm over time in HuBERT base models, which padding would change),
then the transformer runs on the padded batch with a padding mask.
"""
from __future__ import annotations

import logging
import pickle
import zipfile

from ..audio import SAMPLE_RATE
from .compat import (
    coerce_declared_ints,
    fairseq_safe_globals,
    import_fairseq,
    remap_weight_norm_keys,
    unsafe_globals,
)
from .models import ModelFileError

logger = logging.getLogger("amela.s2s")


def read_checkpoint(path: str) -> dict:
    """fairseq's load_checkpoint_to_cpu under the scoped allowlist (shim 2), with errors that name the file."""
    import_fairseq()
    from fairseq import checkpoint_utils

    try:
        with fairseq_safe_globals():
            return checkpoint_utils.load_checkpoint_to_cpu(path)
    except pickle.UnpicklingError as exc:
        extra = unsafe_globals(path)
        if extra:
            raise ModelFileError(f"{path}: torch refused to load it with weights_only=True: it needs "
                                 f"{', '.join(extra)}, outside AMELA's allowlist for fairseq checkpoints") from exc
        raise ModelFileError(f"{path}: not a readable fairseq checkpoint (corrupt or truncated?): {exc}") from exc
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, KeyError) as exc:
        raise ModelFileError(f"{path}: not a readable fairseq checkpoint (corrupt or truncated?): {exc}") from exc


def load_hubert(path: str):
    """(model in eval mode on CPU, task config) from a HuBERT checkpoint, loaded strictly (shims 2-4)."""
    state = read_checkpoint(path)
    from fairseq import tasks

    cfg = state.get("cfg")
    if cfg is None or "model" not in cfg or "task" not in cfg:
        raise ModelFileError(f"{path}: no fairseq config (cfg) in the checkpoint; is it a HuBERT checkpoint?")
    changed = coerce_declared_ints(cfg)
    if changed:
        logger.info("%s: integral floats converted to int where fairseq declares int: %s", path, ", ".join(changed))
    try:
        task = tasks.setup_task(cfg.task)
        if "task_state" in state:
            task.load_state_dict(state["task_state"])
        model = task.build_model(cfg.model)
    except Exception as exc:  # noqa: BLE001 - config problems surface from deep inside fairseq/omegaconf
        raise ModelFileError(f"{path}: cannot build the model from its config: {type(exc).__name__}: {exc}") from exc
    weights, renamed = remap_weight_norm_keys(state["model"], model.state_dict().keys())
    if renamed:
        logger.info("%s: weight-norm keys mapped to this torch's names: %s", path, ", ".join(renamed))
    try:
        model.load_state_dict(weights, strict=True, model_cfg=cfg.model)
    except RuntimeError as exc:
        raise ModelFileError(f"{path}: weights do not match the model its config describes: {exc}") from exc
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model, task.cfg


class HubertReader:
    """Features of layer `layer` (1-based, as textlesslib counts) for lists of 16 kHz waveforms."""

    sample_rate = SAMPLE_RATE

    def __init__(self, model, task_cfg, layer: int, device: str = "cpu", fp16: bool = False):
        import torch

        n_layers = len(model.encoder.layers)
        if not 1 <= layer <= n_layers:
            raise ModelFileError(f"layer {layer} does not exist: this model has transformer layers 1..{n_layers}")
        self.layer = layer
        self.normalize = bool(getattr(task_cfg, "normalize", False))
        self.device = torch.device(device)
        self.dtype = torch.float16 if fp16 and self.device.type == "cuda" else torch.float32
        self.model = model.to(self.device, self.dtype)
        # Receptive field and hop of the conv front end, in samples: shorter input gives no frame.
        self.min_samples, self.hop = _conv_geometry(model.feature_extractor)

    @classmethod
    def from_checkpoint(cls, path: str, layer: int, device: str = "cpu", fp16: bool = False) -> HubertReader:
        model, task_cfg = load_hubert(path)
        return cls(model, task_cfg, layer, device, fp16)

    def frames(self, n_samples: int) -> int:
        return 0 if n_samples < self.min_samples else (n_samples - self.min_samples) // self.hop + 1

    def features(self, waves: list) -> list:
        """One (T_i, D) float32 CPU tensor per 1-D waveform tensor (each at least `min_samples` long)."""
        import torch
        import torch.nn.functional as F

        with torch.inference_mode():
            convs = []
            for w in waves:
                w = w.to(self.device, torch.float32).view(1, -1)
                if self.normalize:  # the model was trained on per-utterance normalised audio
                    w = F.layer_norm(w, w.shape)
                convs.append(self.model.feature_extractor(w.to(self.dtype)))  # (1, C, T_i)
            lengths = [c.shape[-1] for c in convs]
            x = torch.zeros(len(convs), convs[0].shape[1], max(lengths), device=self.device, dtype=self.dtype)
            for i, c in enumerate(convs):
                x[i, :, : lengths[i]] = c[0]
            pad = torch.arange(max(lengths), device=self.device)[None, :] >= torch.tensor(lengths, device=self.device)[:, None]
            out = self._transformer(x, pad if bool(pad.any()) else None)
            return [out[i, : lengths[i]].float().cpu() for i in range(len(convs))]

    def _transformer(self, conv, padding_mask):
        """HubertModel.forward(features_only, mask=False) from the conv output on: the same steps, batched."""
        m = self.model
        x = m.layer_norm(conv.transpose(1, 2))
        if m.post_extract_proj is not None:
            x = m.post_extract_proj(x)
        x, _ = m.encoder(x, padding_mask=padding_mask, layer=self.layer - 1)
        return x


def _conv_geometry(extractor) -> tuple[int, int]:
    """(receptive field, hop) in samples of a fairseq ConvFeatureExtractionModel."""
    import torch.nn as nn

    field, hop = 1, 1
    for block in extractor.conv_layers:
        conv = next(m for m in block.modules() if isinstance(m, nn.Conv1d))
        field += (conv.kernel_size[0] - 1) * hop
        hop *= conv.stride[0]
    return field, hop
