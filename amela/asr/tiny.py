"""Tiny NeMo ASR models with random weights, built from a config (no download): for tests, benches and smoke runs.

Their transcripts are gibberish but deterministic, which is all a pipeline test needs: the same audio must give the
same text through the stage as through a direct `model.transcribe()` call.
"""
from __future__ import annotations

from ..audio import SAMPLE_RATE  # the tiny models take what the shared reader gives by default

LABELS = list(" abcdefghijklmnopqrstuvwxyz'")
FEATURES = 16


def _preprocessor() -> dict:
    return {
        "_target_": "nemo.collections.asr.modules.AudioToMelSpectrogramPreprocessor",
        "sample_rate": SAMPLE_RATE, "features": FEATURES, "n_fft": 512,
        "window_size": 0.025, "window_stride": 0.01, "dither": 0.0, "pad_to": 0,
    }


def _convasr_encoder(filters: int, stride: int = 2) -> dict:
    return {
        "_target_": "nemo.collections.asr.modules.ConvASREncoder", "feat_in": FEATURES, "activation": "relu",
        "conv_mask": True,
        "jasper": [{"filters": filters, "repeat": 1, "kernel": [11], "stride": [stride], "dilation": [1],
                    "dropout": 0.0, "residual": False, "separable": True}],
    }


def _conformer_encoder(d_model: int) -> dict:
    return {
        "_target_": "nemo.collections.asr.modules.ConformerEncoder", "feat_in": FEATURES, "n_layers": 1,
        "d_model": d_model, "subsampling": "striding", "subsampling_factor": 4, "subsampling_conv_channels": 16,
        "ff_expansion_factor": 2, "n_heads": 2, "conv_kernel_size": 9, "dropout": 0.0, "dropout_pre_encoder": 0.0,
        "dropout_emb": 0.0, "dropout_att": 0.0,
    }


def build_ctc(encoder: str = "convasr", seed: int = 0):
    """An EncDecCTCModel with a character vocabulary (ConvASR ~40 KB, Conformer ~200 KB as .nemo)."""
    import torch
    from nemo.collections.asr.models import EncDecCTCModel
    from omegaconf import OmegaConf

    torch.manual_seed(seed)
    width = 32
    enc = _convasr_encoder(width) if encoder == "convasr" else _conformer_encoder(width)
    cfg = OmegaConf.create({
        "sample_rate": SAMPLE_RATE, "labels": LABELS, "preprocessor": _preprocessor(), "encoder": enc,
        "decoder": {"_target_": "nemo.collections.asr.modules.ConvASRDecoder", "feat_in": width,
                    "num_classes": len(LABELS), "vocabulary": LABELS},
        "train_ds": None, "validation_ds": None, "test_ds": None,
    })
    return EncDecCTCModel(cfg=cfg).eval()


def build_rnnt(seed: int = 0):
    """An EncDecRNNTModel (ConvASR encoder, one-layer LSTM prediction net, greedy batch decoding)."""
    import torch
    from nemo.collections.asr.models import EncDecRNNTModel
    from omegaconf import OmegaConf

    torch.manual_seed(seed)
    enc_hidden, pred_hidden = 32, 32
    cfg = OmegaConf.create({
        "sample_rate": SAMPLE_RATE, "labels": LABELS,
        "model_defaults": {"enc_hidden": enc_hidden, "pred_hidden": pred_hidden},
        "preprocessor": _preprocessor(), "encoder": _convasr_encoder(enc_hidden, stride=4),
        "decoder": {"_target_": "nemo.collections.asr.modules.RNNTDecoder", "vocab_size": len(LABELS),
                    "prednet": {"pred_hidden": pred_hidden, "pred_rnn_layers": 1, "dropout": 0.0}},
        "joint": {"_target_": "nemo.collections.asr.modules.RNNTJoint", "num_classes": len(LABELS),
                  "jointnet": {"joint_hidden": 32, "activation": "relu", "dropout": 0.0,
                               "encoder_hidden": enc_hidden, "pred_hidden": pred_hidden}},
        "decoding": {"strategy": "greedy_batch", "greedy": {"max_symbols": 1}},  # bounded work per frame
        "loss": {"loss_name": "default"},
        "train_ds": None, "validation_ds": None, "test_ds": None,
    })
    return EncDecRNNTModel(cfg=cfg).eval()


def save_tiny_models(directory: str) -> dict[str, str]:
    """Build and save the tiny models as .nemo files; returns {kind: path}."""
    import os

    os.makedirs(directory, exist_ok=True)
    paths = {}
    for kind, build in (("ctc", build_ctc), ("conformer_ctc", lambda: build_ctc("conformer")), ("rnnt", build_rnnt)):
        path = os.path.join(directory, f"tiny_{kind}.nemo")
        build().save_to(path)
        paths[kind] = path
    return paths


def save_tiny_salm(directory: str, seed: int = 0) -> str:
    """A SALM checkpoint directory with random weights, built offline: a byte-level BPE tokenizer trained here, a
    one-layer Qwen2 LLM from a config, and a one-layer Conformer encoder. Laid out as SALM.save_pretrained writes it
    (config.json, model.safetensors, tokenizer files, llm_backbone/config.json), so from_pretrained needs no network.
    """
    import os

    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2Config

    torch.manual_seed(seed)
    os.makedirs(directory, exist_ok=True)
    specials = ["<pad>", "<unk>", "<s>", "</s>", "<|im_start|>", "<|im_end|>"]
    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    corpus = ["transcribe the following audio", "user assistant", "hello world this is a test"] * 10
    bpe.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=300, special_tokens=specials,
                                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, pad_token="<pad>", unk_token="<unk>",
                                        bos_token="<s>", eos_token="</s>")
    tokenizer.save_pretrained(directory)
    llm_dir = os.path.join(directory, "llm_backbone")
    Qwen2Config(vocab_size=len(tokenizer) + 8, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=4096,
                bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id).save_pretrained(llm_dir)
    cfg = {
        "pretrained_llm": llm_dir, "pretrained_asr": "none", "pretrained_weights": False, "tokenizer_path": directory,
        "audio_locator_tag": "<|audioplaceholder|>", "prompt_format": "qwen",
        "freeze_params": [], "prevent_freeze_params": [],
        "perception": {
            "_target_": "nemo.collections.speechlm2.modules.perception.AudioPerceptionModule", "output_dim": 32,
            "preprocessor": _preprocessor(), "encoder": _conformer_encoder(32),
            "modality_adapter": {"_target_": "nemo.collections.speechlm2.modules.perception.IdentityConnector",
                                 "d_model": 32},
        },
    }
    from nemo.collections.speechlm2.models import SALM

    SALM(cfg).save_pretrained(directory)
    return directory
