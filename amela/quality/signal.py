"""Signal measures that need no model, accumulated block by block over a span at its own sample rate.

- `peak_dbfs`: the largest absolute sample, dB relative to full scale (1.0); -inf for digital silence is written as
  `SILENCE_DBFS` so that every value is a number a filter can compare.
- `rms_dbfs`: root mean square over all samples (all channels), dB relative to full scale.
- `clipping_ratio`: the share of samples (all channels) whose magnitude is at least `clip_level` (near full scale).
- `dc_offset`: the mean sample value of the mono mix (full scale = 1).
- `bandwidth_hz`: the effective upper band edge: the highest frequency where the long-term average spectrum of the
  mono mix is within `BANDWIDTH_DROP_DB` of its maximum. Audio upsampled from 8 kHz shows about 4000 Hz whatever
  its file's rate; MP3 at low bitrates shows its low-pass.
"""
from __future__ import annotations

import math

import numpy as np

SILENCE_DBFS = -120.0
N_FFT = 1024
BANDWIDTH_DROP_DB = 60.0


def dbfs(value: float) -> float:
    return round(max(SILENCE_DBFS, 20.0 * math.log10(value)) if value > 0 else SILENCE_DBFS, 3)


class SignalMeasures:
    """Feed blocks (frames x channels, float32, full scale 1.0) with `add`, read the figures with `result`."""

    def __init__(self, sample_rate: int, clip_level: float):
        self.sample_rate = sample_rate
        self.clip_level = clip_level
        self.peak = 0.0
        self.sum_sq = 0.0
        self.samples = 0  # over all channels
        self.clipped = 0
        self.mono_sum = 0.0
        self.frames = 0
        self.power = np.zeros(N_FFT // 2 + 1)
        self.spectra = 0
        self.window = np.hanning(N_FFT)
        self.rest = np.zeros(0, dtype=np.float32)  # mono samples not yet in a whole FFT frame

    def add(self, data: np.ndarray, mono: np.ndarray) -> None:
        if not data.size:
            return
        mag = np.abs(data)
        self.peak = max(self.peak, float(mag.max()))
        self.sum_sq += float(np.dot(data.ravel().astype(np.float64), data.ravel().astype(np.float64)))
        self.samples += data.size
        self.clipped += int(np.count_nonzero(mag >= self.clip_level))
        self.mono_sum += float(mono.sum(dtype=np.float64))
        self.frames += len(mono)
        buf = np.concatenate([self.rest, mono])
        whole = len(buf) // N_FFT * N_FFT
        if whole:
            frames = buf[:whole].reshape(-1, N_FFT) * self.window
            self.power += (np.abs(np.fft.rfft(frames, axis=1)) ** 2).sum(axis=0)
            self.spectra += len(frames)
        self.rest = buf[whole:]

    def bandwidth_hz(self) -> float:
        power = self.power
        if not self.spectra:  # shorter than one FFT frame: use what there is, zero-padded
            padded = np.zeros(N_FFT, dtype=np.float64)
            padded[:len(self.rest)] = self.rest * np.hanning(len(self.rest))
            power = np.abs(np.fft.rfft(padded)) ** 2
        if power.max() <= 0:
            return 0.0
        level = 10 * np.log10(np.maximum(power, 1e-30) / power.max())
        top = int(np.nonzero(level >= -BANDWIDTH_DROP_DB)[0].max())
        return round(top * self.sample_rate / N_FFT, 1)

    def result(self) -> dict:
        return {
            "peak_dbfs": dbfs(self.peak),
            "rms_dbfs": dbfs(math.sqrt(self.sum_sq / self.samples)) if self.samples else SILENCE_DBFS,
            "clipping_ratio": round(self.clipped / self.samples, 7) if self.samples else 0.0,
            "bandwidth_hz": self.bandwidth_hz(),
            "dc_offset": round(self.mono_sum / self.frames, 6) if self.frames else 0.0,
        }
