#!/usr/bin/env python
"""Build full-size ASR and S2S models with random weights, offline, in the exact architectures of the published ones.

    python scripts/fullsize_models.py OUT_DIR [--only NAME ...] [--force]

Real checkpoints cannot be downloaded on a compute node (or here), but their architectures can be built from the
published configs: random weights at full size exercise the same code paths, memory and speed as the real models
(only the words and the sounds come out wrong). What gets built (NAME: file in OUT_DIR):

  parakeet   parakeet-tdt-0.6b-v2.nemo          FastConformer-XL encoder + TDT decoder, 1,024 SentencePiece tokens
  ctc-large  stt_en_fastconformer_ctc_large.nemo FastConformer-Large encoder + CTC decoder, 1,024 SentencePiece tokens
  mhubert    mhubert_base_vp_en_es_fr_it3.pt     mHuBERT-base as fairseq's trainer saved it in 2021
  kmeans     mhubert_base_vp_en_es_fr_it3_L11_km1000.bin  1,000 centroids of 768 dims, a joblib'd MiniBatchKMeans
  vocoder    mhubert_..._km1000_lj_g_00500000.pt + ..._config.json  unit HiFi-GAN, code-HiFi-GAN config, 1,000 units

Files already in OUT_DIR are kept (pass --force to rebuild); each is written to a temporary name and renamed, so an
interrupted build never leaves a file that looks finished. OUT_DIR/fullsize.json records each model's parameter count,
file size and build time. Tokenizers are trained here on generated text: the vocabulary size is the published one, the
pieces are not. Building everything takes a few minutes on 2 cores and stays under ~6 GB of memory (the 0.6B model:
2.4 GB of fp32 weights, written once).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

SAMPLE_RATE = 16000

# -- ASR: figures from NeMo's configs and the models' cards ------------------------------------------------------------
# NeMo examples/asr/conf/fastconformer/fast-conformer_ctc_bpe.yaml (and ..._transducer_bpe.yaml) carry a table of the
# FastConformer variants: Large (120M) d_model 512, 8 heads, 17 layers, conv kernel 9, xscaling true; XLarge (616M)
# d_model 1024, 8 heads, 24 layers, conv kernel 9, pred/joint hidden 640, 2 prediction-net layers, xscaling false.
# The published Large CTC checkpoint has 18 layers (the config's own n_layers: 18, not the table's 17): 18 layers give
# 115.6M parameters, 462 MB in fp32, the size of stt_en_fastconformer_ctc_large.nemo on its model page (463 MB);
# 17 layers would give 109M / 438 MB.
# All variants: dw_striding subsampling x8 with 256 channels, ff_expansion_factor 4, rel_pos attention with
# untied biases, full context [-1, -1], batch-norm in the conv module.
FASTCONFORMER = {
    "xlarge": {"d_model": 1024, "n_heads": 8, "n_layers": 24, "conv_kernel_size": 9, "xscaling": False},
    "large": {"d_model": 512, "n_heads": 8, "n_layers": 18, "conv_kernel_size": 9, "xscaling": True},
}
# The parakeet-tdt-0.6b-v2 card (huggingface.co/nvidia/parakeet-tdt-0.6b-v2): "XL variant of the FastConformer
# architecture integrates the TDT decoder", 600M parameters, 16 kHz input; its preprocessor has 128 mel bins (as its
# published ONNX exports show: features [B, 128, T]) and its tokenizer 1,024 SentencePiece tokens (+ blank).
# TDT: durations [0, 1, 2, 3, 4] (fastconformer_hybrid_tdt_ctc_bpe.yaml's default and the card's model), the joint
# emits len(durations) extra outputs; greedy_batch decoding with max_symbols 10.
PARAKEET = {"encoder": "xlarge", "features": 128, "vocab_size": 1024, "pred_hidden": 640, "pred_rnn_layers": 2,
            "joint_hidden": 640, "tdt_durations": [0, 1, 2, 3, 4]}
# stt_en_fastconformer_ctc_large (huggingface.co/nvidia/stt_en_fastconformer_ctc_large): FastConformer-CTC Large,
# ~115M parameters (a 463 MB .nemo), 80 mel features (fast-conformer_ctc_bpe.yaml), SentencePiece vocabulary of
# 1,024 ("1k vocab size on 10+k hr datasets", the same config's tokenizer note).
CTC_LARGE = {"encoder": "large", "features": 80, "vocab_size": 1024}

# -- S2S: figures from fairseq's and speech-resynthesis' configs ------------------------------------------------------
# mHuBERT-base (fairseq examples/speech_to_speech, mhubert_base_vp_en_es_fr_it3.pt): HuBERT base, i.e. fairseq's
# HubertConfig defaults: 12 layers, 768 dims, 3,072 FFN, 12 heads, 512-channel conv front end (10/5, 3/2 x4,
# 2/2 x2), conv_pos 128 in 16 groups, final_dim 256, label_rate 50 (saved as the float 50.0); its third
# iteration was trained on 1,000 k-means units (the L11_km1000 quantiser), so the dictionary has 1,000 symbols.
MHUBERT = {"layers": 12, "dim": 768, "ffn": 3072, "heads": 12, "conv_channels": 512, "conv_pos": 128,
           "conv_pos_groups": 16, "n_labels": 1000}
KMEANS_LAYER, KMEANS_UNITS = 11, 1000  # mhubert_base_vp_en_es_fr_it3_L11_km1000.bin
# Unit HiFi-GAN: the code-HiFi-GAN config of facebookresearch/speech-resynthesis (examples/speech_to_speech_translation
# configs, used for fairseq's mhubert_vp_en_es_fr_it3_400k_layer11_km1000_lj vocoder): HiFi-GAN V1 generator
# (512 initial channels, resblock 1 with kernels 3/7/11, dilations 1/3/5), upsampling 5x4x4x2x2 = 320 samples per
# unit frame (kernels 11/8/8/4/4), a 128-dim unit embedding over 1,000 units, and a duration predictor (128 hidden,
# kernel 3).
VOCODER = {
    "resblock": "1", "upsample_rates": [5, 4, 4, 2, 2], "upsample_kernel_sizes": [11, 8, 8, 4, 4],
    "upsample_initial_channel": 512, "resblock_kernel_sizes": [3, 7, 11],
    "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5], [1, 3, 5]], "num_embeddings": 1000, "embedding_dim": 128,
    "model_in_dim": 128, "segment_size": 8960, "code_hop_size": 320, "f0": False, "num_mels": 80,
    "num_freq": 1025, "n_fft": 1024, "hop_size": 256, "win_size": 1024, "dur_prediction_weight": 1.0,
    "dur_predictor_params": {"encoder_embed_dim": 128, "var_pred_hidden_dim": 128, "var_pred_kernel_size": 3,
                             "var_pred_dropout": 0.5},
    "sampling_rate": 16000, "fmin": 0, "fmax": 8000, "fmax_for_loss": None,
}

FILES = {
    "parakeet": ["parakeet-tdt-0.6b-v2.nemo"],
    "ctc-large": ["stt_en_fastconformer_ctc_large.nemo"],
    "mhubert": ["mhubert_base_vp_en_es_fr_it3.pt"],
    "kmeans": ["mhubert_base_vp_en_es_fr_it3_L11_km1000.bin"],
    "vocoder": ["mhubert_vp_en_es_fr_it3_400k_layer11_km1000_lj_g_00500000.pt",
                "mhubert_vp_en_es_fr_it3_400k_layer11_km1000_lj_config.json"],
}


def paths(out_dir: str) -> dict[str, str]:
    """{'parakeet': path, ..., 'vocoder_config': path}: where every built file lives in `out_dir`."""
    out = {name: os.path.join(out_dir, files[0]) for name, files in FILES.items()}
    out["vocoder_config"] = os.path.join(out_dir, FILES["vocoder"][1])
    return out


# -- helpers -----------------------------------------------------------------------------------------------------------
def _tmp_beside(path: str) -> str:
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".part", dir=os.path.dirname(path))
    os.close(fd)
    return tmp


def _publish(tmp: str, path: str) -> None:
    """Rename into place with the mode the umask gives (mkstemp makes 0600 files)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    os.replace(tmp, path)


def _words(n: int, seed: int) -> list[str]:
    """Pseudo-English sentences of random syllables: enough distinct character pairs for 1,024 BPE merges."""
    import random

    rng = random.Random(seed)
    onsets = ["", "b", "c", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "qu", "r", "s", "t", "v", "w", "y", "z",
              "br", "ch", "cl", "dr", "fl", "gr", "pl", "pr", "sh", "sl", "sp", "st", "str", "th", "tr", "wh"]
    nuclei = ["a", "e", "i", "o", "u", "ai", "ea", "ee", "oo", "ou", "y", "ie", "oa"]
    codas = ["", "", "n", "s", "t", "r", "l", "d", "ng", "ck", "st", "nd", "m", "x", "'s"]
    lines = []
    for _ in range(n):
        words = ["".join(rng.choice(onsets) + rng.choice(nuclei) + rng.choice(codas)
                         for _ in range(rng.randint(1, 3))) for _ in range(rng.randint(4, 14))]
        lines.append(" ".join(words))
    return lines


def train_tokenizer(directory: str, vocab_size: int, seed: int = 0) -> str:
    """A SentencePiece BPE model of exactly `vocab_size` pieces in `directory` (tokenizer.model, .vocab, vocab.txt),
    laid out as NeMo's process_asr_text_tokenizer.py writes it."""
    import sentencepiece as spm

    os.makedirs(directory, exist_ok=True)
    prefix = os.path.join(directory, "tokenizer")
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(_words(20000, seed)), model_prefix=prefix, vocab_size=vocab_size, model_type="bpe",
        character_coverage=1.0, bos_id=-1, eos_id=-1, num_threads=2, minloglevel=2)
    with open(prefix + ".vocab", encoding="utf-8") as fh, open(os.path.join(directory, "vocab.txt"), "w") as out:
        for line in fh:
            out.write(line.split("\t")[0] + "\n")
    return directory


def _preprocessor(features: int) -> dict:
    # NeMo's FastConformer configs: 25 ms Hann windows every 10 ms, 512-point FFT, per-feature normalisation.
    return {"_target_": "nemo.collections.asr.modules.AudioToMelSpectrogramPreprocessor", "sample_rate": SAMPLE_RATE,
            "normalize": "per_feature", "window_size": 0.025, "window_stride": 0.01, "window": "hann",
            "features": features, "n_fft": 512, "log": True, "frame_splicing": 1, "dither": 1e-5, "pad_to": 0,
            "pad_value": 0.0}


def _encoder(size: str, features: int) -> dict:
    s = FASTCONFORMER[size]
    return {"_target_": "nemo.collections.asr.modules.ConformerEncoder", "feat_in": features, "feat_out": -1,
            "n_layers": s["n_layers"], "d_model": s["d_model"], "subsampling": "dw_striding",
            "subsampling_factor": 8, "subsampling_conv_channels": 256, "causal_downsampling": False,
            "ff_expansion_factor": 4, "self_attention_model": "rel_pos", "n_heads": s["n_heads"],
            "att_context_size": [-1, -1], "att_context_style": "regular", "xscaling": s["xscaling"],
            "untie_biases": True, "pos_emb_max_len": 5000, "conv_kernel_size": s["conv_kernel_size"],
            "conv_norm_type": "batch_norm", "conv_context_size": None, "dropout": 0.1, "dropout_pre_encoder": 0.1,
            "dropout_emb": 0.0, "dropout_att": 0.1}


def _datasets(tokenized: bool) -> dict:
    """Dataset sections as the published .nemo files carry them (no manifests): NeMo's transcribe(paths) builds its
    dataloader from validation_ds (e.g. use_start_end_token), so a model without them cannot transcribe files."""
    ds = {"manifest_filepath": None, "sample_rate": SAMPLE_RATE, "batch_size": 16, "shuffle": False,
          "num_workers": 8, "pin_memory": True}
    if tokenized:
        ds["use_start_end_token"] = False
    return {"train_ds": dict(ds, shuffle=True, max_duration=40.0, min_duration=0.1), "validation_ds": dict(ds),
            "test_ds": dict(ds)}


def _save_nemo(model, path: str) -> None:
    placeholder = _tmp_beside(path)
    tmp = placeholder + ".nemo"  # NeMo wants the suffix
    os.unlink(placeholder)
    try:
        model.save_to(tmp)
        _publish(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _param_count(model) -> int:
    return sum(p.numel() for p in model.parameters())


# -- builders ----------------------------------------------------------------------------------------------------------
def build_parakeet(path: str, seed: int = 0) -> dict:
    import torch
    from nemo.collections.asr.models import EncDecRNNTBPEModel
    from omegaconf import OmegaConf

    p = PARAKEET
    enc = FASTCONFORMER[p["encoder"]]
    with tempfile.TemporaryDirectory() as tok:
        train_tokenizer(tok, p["vocab_size"], seed)
        cfg = OmegaConf.create({
            "sample_rate": SAMPLE_RATE,
            "model_defaults": {"enc_hidden": enc["d_model"], "pred_hidden": p["pred_hidden"],
                               "joint_hidden": p["joint_hidden"], "tdt_durations": p["tdt_durations"],
                               "num_tdt_durations": len(p["tdt_durations"])},
            "tokenizer": {"dir": tok, "type": "bpe"},
            "preprocessor": _preprocessor(p["features"]),
            "encoder": _encoder(p["encoder"], p["features"]),
            "decoder": {"_target_": "nemo.collections.asr.modules.RNNTDecoder", "normalization_mode": None,
                        "random_state_sampling": False, "blank_as_pad": True,
                        "prednet": {"pred_hidden": p["pred_hidden"], "pred_rnn_layers": p["pred_rnn_layers"],
                                    "t_max": None, "dropout": 0.2}},
            "joint": {"_target_": "nemo.collections.asr.modules.RNNTJoint", "log_softmax": None,
                      "preserve_memory": False, "fuse_loss_wer": False,
                      "jointnet": {"joint_hidden": p["joint_hidden"], "activation": "relu", "dropout": 0.2},
                      "num_extra_outputs": len(p["tdt_durations"])},
            "decoding": {"strategy": "greedy_batch", "model_type": "tdt", "durations": p["tdt_durations"],
                         "greedy": {"max_symbols": 10}},
            "loss": {"loss_name": "tdt", "tdt_kwargs": {"fastemit_lambda": 0.0, "clamp": -1.0,
                                                        "durations": p["tdt_durations"], "sigma": 0.02,
                                                        "omega": 0.1}},
            **_datasets(tokenized=True),
        })
        torch.manual_seed(seed)
        model = EncDecRNNTBPEModel(cfg=cfg).eval()
        _save_nemo(model, path)
    return {"parameters": _param_count(model), "vocab_size": model.tokenizer.vocab_size}


def build_ctc_large(path: str, seed: int = 0) -> dict:
    import torch
    from nemo.collections.asr.models import EncDecCTCModelBPE
    from omegaconf import OmegaConf

    c = CTC_LARGE
    with tempfile.TemporaryDirectory() as tok:
        train_tokenizer(tok, c["vocab_size"], seed)
        cfg = OmegaConf.create({
            "sample_rate": SAMPLE_RATE, "tokenizer": {"dir": tok, "type": "bpe"},
            "preprocessor": _preprocessor(c["features"]), "encoder": _encoder(c["encoder"], c["features"]),
            "decoder": {"_target_": "nemo.collections.asr.modules.ConvASRDecoder", "feat_in": None,
                        "num_classes": -1, "vocabulary": []},
            **_datasets(tokenized=True),
        })
        torch.manual_seed(seed)
        model = EncDecCTCModelBPE(cfg=cfg).eval()
        _save_nemo(model, path)
    return {"parameters": _param_count(model), "vocab_size": model.tokenizer.vocab_size}


def build_mhubert(path: str, seed: int = 0) -> dict:
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from amela.s2s.testing import build_hubert

    tmp = _tmp_beside(path)
    try:
        model = build_hubert(tmp, seed=seed, **MHUBERT)
        _publish(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return {"parameters": _param_count(model)}


def build_kmeans(path: str, hubert_path: str, seed: int = 0) -> dict:
    """MiniBatchKMeans (as fairseq's learn_kmeans.py fitted them) on layer-11 features of the built mHuBERT for
    synthetic audio, saved with joblib: the form of the 2021 quantisers."""
    import joblib
    import numpy as np
    import torch
    from sklearn.cluster import MiniBatchKMeans

    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from amela.s2s.hubert import HubertReader

    reader = HubertReader.from_checkpoint(hubert_path, KMEANS_LAYER)
    rng = np.random.default_rng(seed)
    t = np.arange(10 * SAMPLE_RATE) / SAMPLE_RATE
    waves = []
    for _ in range(6):  # 6 x 10 s of tones in noise: ~3,000 frames, enough for 1,000 centroids
        f = rng.uniform(80, 900, 3)
        x = sum(0.2 * np.sin(2 * np.pi * fi * t + rng.uniform(0, 6)) for fi in f) + 0.05 * rng.standard_normal(len(t))
        waves.append(torch.from_numpy(x.astype(np.float32)))
    feats = torch.cat(reader.features(waves)).numpy()
    # init="random": k-means++ over 1,000 centroids costs minutes on 2 cores and buys nothing for random weights.
    km = MiniBatchKMeans(n_clusters=KMEANS_UNITS, init="random", batch_size=4096, max_iter=10, n_init=1,
                         random_state=seed)
    km.fit(feats)
    tmp = _tmp_beside(path)
    try:
        joblib.dump(km, tmp)
        _publish(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return {"centroids": list(km.cluster_centers_.shape), "fit_frames": int(len(feats))}


def build_vocoder(path: str, config_path: str, seed: int = 0) -> dict:
    import torch

    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from amela.s2s.testing import old_weight_norm_names
    from amela.s2s.vocoder import _generator_class

    torch.manual_seed(seed)
    gen = _generator_class()(VOCODER)
    with torch.no_grad():  # the default init is near-silent; a little noise makes audible (random) output
        for p in gen.parameters():
            p.add_(0.01 * torch.randn_like(p))
    tmp, tmp_cfg = _tmp_beside(path), _tmp_beside(config_path)
    try:
        torch.save({"generator": old_weight_norm_names(gen.state_dict())}, tmp)
        with open(tmp_cfg, "w", encoding="utf-8") as fh:
            json.dump(VOCODER, fh, indent=2)
        _publish(tmp_cfg, config_path)
        _publish(tmp, path)
    finally:
        for f in (tmp, tmp_cfg):
            if os.path.exists(f):
                os.unlink(f)
    return {"parameters": _param_count(gen)}


def build(out_dir: str, only: list[str] | None = None, force: bool = False, log=print) -> dict:
    """Build what is missing (or everything with force); returns the contents of OUT_DIR/fullsize.json."""
    os.makedirs(out_dir, exist_ok=True)
    p = paths(out_dir)
    record_path = os.path.join(out_dir, "fullsize.json")
    try:
        with open(record_path, encoding="utf-8") as fh:
            record = json.load(fh)
    except (OSError, ValueError):
        record = {}
    steps = {
        "parakeet": lambda: build_parakeet(p["parakeet"]),
        "ctc-large": lambda: build_ctc_large(p["ctc-large"]),
        "mhubert": lambda: build_mhubert(p["mhubert"]),
        "kmeans": lambda: build_kmeans(p["kmeans"], p["mhubert"]),
        "vocoder": lambda: build_vocoder(p["vocoder"], p["vocoder_config"]),
    }
    wanted = list(only or steps)
    if "kmeans" in wanted and "mhubert" not in wanted and not os.path.isfile(p["mhubert"]):
        wanted.insert(wanted.index("kmeans"), "mhubert")  # the quantiser is fitted on its features
    for name in wanted:
        targets = [os.path.join(out_dir, f) for f in FILES[name]]
        if not force and all(os.path.isfile(t) for t in targets):
            log(f"{name}: kept {targets[0]}")
            continue
        log(f"{name}: building ...")
        t0 = time.time()
        info = steps[name]()
        info["build_seconds"] = round(time.time() - t0, 1)
        info["files"] = {os.path.basename(t): os.path.getsize(t) for t in targets}
        record[name] = info
        log(f"{name}: {json.dumps(info)}")
        tmp = _tmp_beside(record_path)
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(record, fh, indent=2)
        _publish(tmp, record_path)
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog="Models: " + ", ".join(FILES) + ". See the module docstring for what "
                                     "each is and where its figures come from.")
    parser.add_argument("out_dir", metavar="OUT_DIR", help="where to write the models (outside the repository)")
    parser.add_argument("--only", action="append", choices=list(FILES), metavar="NAME",
                        help=f"build only this model (repeatable): {', '.join(FILES)}")
    parser.add_argument("--force", action="store_true", help="rebuild models whose files already exist")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing here needs the network
    build(args.out_dir, args.only, args.force, log=lambda m: print(m, flush=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
