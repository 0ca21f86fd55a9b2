"""Decoding spans: exact offset/duration, channel handling, resampling, and clear errors naming the file."""
import numpy as np
import pytest
import soundfile as sf

from amela.asr.audio import load_span
from amela.errors import ItemError

from .conftest import RATE, noise, write_wav


def test_offset_and_duration_give_the_exact_span(tmp_path):
    x = noise(5.0, 1)
    path = write_wav(tmp_path / "a.wav", x)
    got = load_span({"audio_filepath": path, "offset": 1.25, "duration": 2.0}, RATE)
    want, _ = sf.read(path, start=int(1.25 * RATE), frames=2 * RATE, dtype="float32")
    np.testing.assert_array_equal(got, want)


def test_stereo_is_averaged_or_a_channel_picked(tmp_path):
    left, right = noise(1.0, 1), noise(1.0, 2)
    path = write_wav(tmp_path / "s.wav", np.stack([left, right], axis=1))
    rec = {"audio_filepath": path, "duration": 1.0}
    ref, _ = sf.read(path, dtype="float32")
    np.testing.assert_allclose(load_span(rec, RATE), ref.mean(axis=1), atol=1e-6)
    np.testing.assert_array_equal(load_span(rec, RATE, channel=1), ref[:, 1])
    with pytest.raises(ItemError, match="channel 2 requested, the file has 2"):
        load_span(rec, RATE, channel=2)


def test_other_rates_are_resampled(tmp_path):
    path = write_wav(tmp_path / "n.wav", noise(2.0, 1, rate=8000), 8000)
    assert len(load_span({"audio_filepath": path, "duration": 2.0}, RATE)) == 2 * RATE


@pytest.mark.parametrize("kind, message", [("missing", "does not exist"), ("empty", "cannot decode|no audio"),
                                           ("garbage", "cannot decode"), ("zero_frames", "no audio samples")])
def test_bad_files_raise_item_errors_naming_the_file(tmp_path, kind, message):
    path = tmp_path / f"{kind}.wav"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "garbage":
        path.write_bytes(b"this is not audio" * 100)
    elif kind == "zero_frames":
        sf.write(str(path), np.zeros(0, dtype=np.float32), RATE)
    with pytest.raises(ItemError, match=message) as err:
        load_span({"audio_filepath": str(path), "duration": 1.0}, RATE)
    assert str(path) in str(err.value)


def test_offset_past_the_end_is_an_item_error(tmp_path):
    path = write_wav(tmp_path / "a.wav", noise(1.0, 1))
    with pytest.raises(ItemError, match="past its end"):
        load_span({"audio_filepath": path, "offset": 5.0, "duration": 1.0}, RATE)
