"""Signal measures on audio built here, with figures known in closed form."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile
import soxr

from amela.quality.audio import read_span
from amela.quality.signal import SILENCE_DBFS, SignalMeasures

SR = 16000


def measure(audio: np.ndarray, rate: int = SR, clip_level: float = 0.999) -> dict:
    m = SignalMeasures(rate, clip_level)
    data = audio.astype(np.float32).reshape(len(audio), -1)
    mono = data.mean(axis=1, dtype=np.float32)
    for start in range(0, len(data), 7919):  # odd block sizes: the accumulation must not depend on them
        m.add(data[start:start + 7919], mono[start:start + 7919])
    return m.result()


def noise(seconds: float, rate: int = SR, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(int(seconds * rate)) * 0.1).astype(np.float32)


def test_sine_levels_and_dc():
    t = np.arange(3 * SR) / SR
    m = measure(0.5 * np.sin(2 * np.pi * 440 * t) + 0.01)
    assert m["peak_dbfs"] == pytest.approx(20 * np.log10(0.51), abs=0.01)
    assert m["rms_dbfs"] == pytest.approx(10 * np.log10(0.5**2 / 2 + 0.01**2), abs=0.01)
    assert m["dc_offset"] == pytest.approx(0.01, abs=1e-4)
    assert m["clipping_ratio"] == 0.0


def test_clipping_ratio_counts_samples_near_full_scale():
    audio = noise(2.0) * 20  # std 2: most samples beyond full scale
    clipped = np.clip(audio, -1.0, 1.0)
    expected = float(np.mean(np.abs(clipped) >= 0.999))
    assert 0.5 < expected < 0.8
    assert measure(clipped)["clipping_ratio"] == pytest.approx(expected, abs=1e-6)
    at_full_scale = float(np.mean(np.abs(clipped) == 1.0))
    assert measure(clipped, clip_level=1.0)["clipping_ratio"] == pytest.approx(at_full_scale, abs=1e-6)


def test_silence_is_a_number():
    m = measure(np.zeros(SR, dtype=np.float32))
    assert m["peak_dbfs"] == m["rms_dbfs"] == SILENCE_DBFS
    assert m["bandwidth_hz"] == 0.0


@pytest.mark.parametrize("rate", [16000, 44100])
def test_bandwidth_finds_the_band_edge_of_upsampled_narrow_band_audio(rate):
    full = noise(4.0, rate)
    narrow = soxr.resample(soxr.resample(full, rate, 8000), 8000, rate)
    assert measure(full, rate)["bandwidth_hz"] > 0.95 * rate / 2
    assert 3600 < measure(narrow, rate)["bandwidth_hz"] < 4100  # within one FFT bin of 4 kHz


def test_read_span_measures_the_native_rate_and_returns_16k(tmp_path):
    path = tmp_path / "stereo44.wav"
    left = noise(2.0, 44100, 1)
    right = np.full_like(left, 0.2)
    soundfile.write(path, np.stack([left, right], axis=1), 44100, subtype="FLOAT")
    audio, m = read_span({"audio_filepath": str(path), "offset": 0.5, "duration": 1.0}, None, 0.999)
    assert audio.dtype == np.float32 and len(audio) == pytest.approx(SR, abs=2)
    assert m["duration_read_s"] == pytest.approx(1.0, abs=1e-4)
    assert m["dc_offset"] == pytest.approx(0.1, abs=0.01)  # the mono mix: (noise + 0.2) / 2
    assert m["bandwidth_hz"] > 20000  # measured at 44.1 kHz, before resampling
    _, only_right = read_span({"audio_filepath": str(path)}, 1, 0.999)
    assert only_right["peak_dbfs"] == pytest.approx(20 * np.log10(0.2), abs=0.01)


def test_read_span_clips_over_full_scale_floats_for_the_models(tmp_path):
    path = tmp_path / "loud.wav"
    soundfile.write(path, noise(1.0) * 30, SR, subtype="FLOAT")
    audio, m = read_span({"audio_filepath": str(path)}, None, 0.999)
    assert np.abs(audio).max() <= 1.0
    assert m["peak_dbfs"] > 6 and m["clipping_ratio"] > 0.5
