"""DNSMOS P.835 (SIG, BAK, OVRL) and P.808 with the ONNX models the `speechmos` package ships.

The windows, the P.808 mel features and the polynomial mapping follow `speechmos.dnsmos` (v0.0.1.1) exactly, so at
its 1 s hop the scores equal `speechmos.dnsmos.run(audio, 16000)`: 9.01 s windows; a clip shorter than a window is
doubled until it fills one; the window count is `int((floor(seconds) - 9.01) / hop) + 1`; at the 1 s hop windows whose
float end falls one sample short are skipped (from the 8th on), as speechmos does; P.808 sees the window without its
last 160 samples as a librosa mel spectrogram (n_fft 321, hop 160, 120 mels) in dB relative to the window's maximum.

What differs: windows are cut from the audio block by block as it is decoded (memory does not grow with the file),
the windows of a batch of records go through onnxruntime `window_batch` at a time, and a longer hop scores fewer
windows. Off the reference hop, windows are exactly 9.01 s; when the regular windows leave more than `MAX_TAIL_S` at
the end unscored, one more window ending at the end is added (at the 1 s hop the tail left is always under 2 s, so
nothing is added there); and a clip shorter than a window gets just the first window of its doubled copy, which holds
all of it.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass

import numpy as np

from ..audio import SAMPLE_RATE  # DNSMOS models take 16 kHz

WINDOW_S = 9.01
WINDOW = int(WINDOW_S * SAMPLE_RATE)  # 144160 samples
REFERENCE_HOP_S = 1.0
MAX_TAIL_S = 2.0
MODEL_FILES = {
    "p835": ("dnsmos_models", "sig_bak_ovr.onnx"),
    "p835_personalized": ("pdnsmos_models", "sig_bak_ovr.onnx"),
    "p808": ("dnsmos_models", "model_v8.onnx"),
}
# speechmos.dnsmos.DNSMOS.get_polyfit_val: raw model outputs to MOS, (sig, bak, ovrl).
POLY = {
    False: ([-0.08397278, 1.22083953, 0.0052439], [-0.13166888, 1.60915514, -0.39604546],
            [-0.06766283, 1.11546468, 0.04602535]),
    True: ([-0.01019296, 0.02751166, 1.19576786, -0.24348726], [-0.04976499, 0.44276479, -0.1644611, 0.96883132],
           [-0.00533021, 0.005101, 1.18058466, -0.11236046]),
}


def model_dir() -> str:
    """The folder of the installed `speechmos` package, which holds the model files (never downloaded)."""
    import importlib.util

    spec = importlib.util.find_spec("speechmos")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("speechmos is not installed: pip install speechmos==0.0.1.1 (ships the DNSMOS models)")
    return list(spec.submodule_search_locations)[0]


def model_path(kind: str) -> str:
    return os.path.join(model_dir(), *MODEL_FILES[kind])


def window_starts(n: int, hop_s: float) -> list[int]:
    """Start samples of the 9.01 s windows over `n` samples (n >= WINDOW: shorter clips are doubled first)."""
    reference = hop_s == REFERENCE_HOP_S
    count = int((math.floor(n / SAMPLE_RATE) - WINDOW_S) / hop_s) + 1
    starts = []
    for idx in range(max(count, 0)):
        t = idx * hop_s
        start = int(round(t * SAMPLE_RATE))  # at the 1 s hop: the reference's int(idx * fs) exactly
        if reference and int((t + WINDOW_S) * SAMPLE_RATE) - start < WINDOW:
            continue  # speechmos's float rounding drops this window: so do we, at its hop
        if start + WINDOW <= n:
            starts.append(start)
    last_end = (max(count, 1) - 1) * hop_s * SAMPLE_RATE + WINDOW
    if n - last_end > MAX_TAIL_S * SAMPLE_RATE or not starts:
        starts.append(n - WINDOW)
    return starts


def fill(audio: np.ndarray) -> np.ndarray:
    """A clip shorter than one window, doubled until it fills one (as speechmos does)."""
    if len(audio) == 0:
        raise ValueError("no samples")
    while len(audio) < WINDOW:
        audio = np.concatenate([audio, audio])
    return audio


@dataclass
class Scores:
    sig: float
    bak: float
    ovrl: float
    p808: float
    windows: int


class Dnsmos:
    """The two onnxruntime sessions of one worker (build once, in the worker; never fork after)."""

    def __init__(self, personalized: bool = False, threads: int = 1, window_batch: int = 1):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        # onnxruntime's own pool would take every core of the node on top of the other workers'.
        opts.intra_op_num_threads = max(1, threads)
        opts.inter_op_num_threads = 1
        providers = ["CPUExecutionProvider"]
        self.personalized = personalized
        self.window_batch = max(1, window_batch)
        primary = model_path("p835_personalized" if personalized else "p835")
        self.p835 = ort.InferenceSession(primary, opts, providers=providers)
        self.p808 = ort.InferenceSession(model_path("p808"), opts, providers=providers)
        self.poly = [np.poly1d(c) for c in POLY[personalized]]

    def score(self, clips: list[np.ndarray], hop_s: float) -> list[Scores]:
        """Mean scores per clip (16 kHz mono float32 in [-1, 1]); the windows of all clips batched together."""
        batch = Batch(self, hop_s)
        for i, clip in enumerate(clips):
            stream = batch.record(i)
            stream.add(np.asarray(clip, dtype=np.float32))
            stream.finish()
        results = batch.results()
        return [results[i] for i in range(len(clips))]

    def _run(self, windows: list[np.ndarray]) -> np.ndarray:
        batch = np.stack(windows)
        p835 = self.p835.run(None, {"input_1": batch})[0]
        p808 = self.p808.run(None, {"input_1": mel_features(batch[:, :-160])})[0]
        return np.concatenate([p835.astype(np.float64), p808.astype(np.float64)], axis=1)


class Batch:
    """The windows of several records, scored in batches of `window_batch` as they come: a record's audio arrives
    block by block (`record(key).add(block)`, then `.finish()`), so only a window's worth of it is ever held here."""

    def __init__(self, dnsmos: Dnsmos, hop_s: float):
        self.dnsmos, self.hop_s = dnsmos, hop_s
        self.pending: list[tuple[tuple, np.ndarray]] = []  # ((key, start), window) not yet scored
        self.raw: dict[tuple, np.ndarray] = {}  # (key, start) -> raw sig, bak, ovrl, p808
        self.final: dict = {}  # key -> the starts whose scores make the record's mean
        self.run_s = 0.0  # seconds in onnxruntime and the mel features

    def record(self, key) -> RecordWindows:
        return RecordWindows(self, key)

    def enqueue(self, key, start: int, window: np.ndarray) -> None:
        self.pending.append(((key, start), window))
        if len(self.pending) >= self.dnsmos.window_batch:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            t0 = time.perf_counter()
            rows = self.dnsmos._run([w for _, w in self.pending])
            self.run_s += time.perf_counter() - t0
            self.raw.update(zip((k for k, _ in self.pending), rows))
            self.pending = []

    def results(self) -> dict:
        """key -> Scores for every finished record (the mean over its windows, in window order)."""
        self.flush()
        out = {}
        for key, starts in self.final.items():
            rows = np.stack([self.raw[(key, s)] for s in starts])
            sig, bak, ovrl = (float(np.mean(p(rows[:, k]))) for k, p in enumerate(self.dnsmos.poly))
            out[key] = Scores(sig, bak, ovrl, float(np.mean(rows[:, 3])), len(rows))
        return out


class RecordWindows:
    """One record's windows from its blocks. Windows of the regular grid go out as soon as they are complete; the
    buffer keeps only what a later window (or the end-aligned tail window) still needs. At the end, the record's
    window list is `window_starts()` of its length (so at the reference hop, exactly speechmos's windows)."""

    def __init__(self, batch: Batch, key):
        self.batch, self.key = batch, key
        self.buf = np.zeros(0, dtype=np.float32)
        self.buf_start = 0  # sample index of buf[0]
        self.total = 0
        self.k = 0  # next index on the regular grid
        self.emitted: set[int] = set()

    def _start(self, k: int) -> int:
        return int(round(k * self.batch.hop_s * SAMPLE_RATE))

    def add(self, block: np.ndarray) -> None:
        self.buf = np.concatenate([self.buf, block]) if len(self.buf) else np.asarray(block, dtype=np.float32)
        self.total += len(block)
        hop_s = self.batch.hop_s
        while (start := self._start(self.k)) + WINDOW <= self.total:
            t = self.k * hop_s
            skipped = hop_s == REFERENCE_HOP_S and int((t + WINDOW_S) * SAMPLE_RATE) - start < WINDOW
            if not skipped:  # see window_starts()
                self.batch.enqueue(self.key, start, self._slice(start))
                self.emitted.add(start)
            self.k += 1
        keep_from = min(self._start(self.k), max(self.total - WINDOW, 0))
        if keep_from > self.buf_start:
            self.buf = self.buf[keep_from - self.buf_start:].copy()
            self.buf_start = keep_from

    def _slice(self, start: int) -> np.ndarray:
        return self.buf[start - self.buf_start:start - self.buf_start + WINDOW].copy()

    def finish(self) -> None:
        if self.total == 0:
            raise ValueError("no samples")
        if self.total < WINDOW:  # the whole clip is still in the buffer
            audio = fill(self.buf)
            # A clip shorter than a window lies whole in the first window of its doubled copy; more windows of the
            # repeats only shift it. Off the reference hop one window is enough.
            starts = window_starts(len(audio), self.batch.hop_s) if self.batch.hop_s == REFERENCE_HOP_S else [0]
            for s in starts:
                self.batch.enqueue(self.key, s, audio[s:s + WINDOW].copy())
        else:
            starts = window_starts(self.total, self.batch.hop_s)
            for s in starts:
                if s not in self.emitted:  # the tail window: the buffer holds the last WINDOW samples
                    self.batch.enqueue(self.key, s, self._slice(s))
                    self.emitted.add(s)
        self.batch.final[self.key] = starts


def mel_features(batch: np.ndarray) -> np.ndarray:
    """P.808's input: librosa's mel spectrogram (what the model was trained with), dB relative to each window's own
    maximum, scaled as speechmos does; (windows, frames, 120) float32."""
    import librosa

    mel = librosa.feature.melspectrogram(y=batch, sr=SAMPLE_RATE, n_fft=321, hop_length=160, n_mels=120)
    db = np.stack([librosa.power_to_db(m, ref=np.max) for m in mel])  # ref per window, not over the batch
    return ((db + 40) / 40).transpose(0, 2, 1).astype(np.float32)
