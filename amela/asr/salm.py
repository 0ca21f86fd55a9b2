"""SALM (speechlm2, e.g. Canary-Qwen-2.5B): speech encoder + LLM, transcribing through generate() with a prompt.

Imported only inside workers. The stage hands this backend the same mono float32 arrays as any ASR model, so
decoding, long-audio cutting, batching by seconds and out-of-memory halving are shared.
"""
from __future__ import annotations

import numpy as np
import torch

from .backend import PieceResult, autocast_for


def load_salm(path: str, device: str):
    """A SALM from a checkpoint directory (config.json + model.safetensors, as save_pretrained writes it)."""
    from nemo.collections.speechlm2.models import SALM

    return SALM.from_pretrained(path, local_files_only=True).to(device).eval()


class SalmBackend:
    """transcribe(arrays) -> [PieceResult] via SALM.generate(prompts, audios, audio_lens, max_new_tokens)."""

    def __init__(self, model, config, device: str):
        self.model = model
        self.config = config
        self.device = device
        self.sample_rate = int(model.sampling_rate)
        self.autocast, self.dtype = autocast_for(device, config.dtype)
        text = config.salm_prompt.replace("{audio}", model.audio_locator_tag)
        self.turns = [{"role": "user", "content": text}]
        from transformers import GenerationConfig

        # Greedy, as ASR wants; the ids SALM.generate would use by default, plus the length limit.
        self.generation = GenerationConfig(bos_token_id=model.text_bos_id, eos_token_id=model.text_eos_id,
                                           pad_token_id=model.text_pad_id, max_new_tokens=config.max_new_tokens,
                                           do_sample=False)

    def transcribe(self, arrays: list[np.ndarray]) -> list[PieceResult]:
        lens = torch.tensor([len(a) for a in arrays], dtype=torch.long)
        audios = torch.zeros(len(arrays), int(lens.max()), dtype=torch.float32)
        for i, a in enumerate(arrays):
            audios[i, : len(a)] = torch.from_numpy(a)
        with torch.inference_mode(), self.autocast():
            ids = self.model.generate(prompts=[self.turns] * len(arrays), audios=audios.to(self.device),
                                      audio_lens=lens.to(self.device), generation_config=self.generation)
        return [PieceResult(self._decode(row)) for row in ids.cpu()]

    def _decode(self, row: torch.Tensor) -> str:
        """Answer tokens up to the first end-of-sequence, without padding or special tokens."""
        tok = self.model.tokenizer
        ids = [int(t) for t in row]
        stop = {self.model.text_eos_id, self.model.text_pad_id}
        for i, t in enumerate(ids):
            if t in stop:
                ids = ids[:i]
                break
        text = tok.tokenizer.decode(ids, skip_special_tokens=True) if hasattr(tok, "tokenizer") else tok.ids_to_text(ids)
        return text.strip()

    def free_memory(self) -> None:
        if self.device == "cuda":
            torch.cuda.empty_cache()
