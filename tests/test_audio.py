"""amela/audio.py, the one reader every stage uses: spans, channels, resampling, int16 pass-through, blocks, checks.

The stages' own tests check what they do with the samples; the reader's rules are tested here, once.
"""
from __future__ import annotations

import os

import numpy as np
import pytest
import soundfile as sf
import soxr

from amela.audio import BLOCK_S, RESAMPLE_QUALITY, SAMPLE_RATE, iter_blocks, open_span, read_span
from amela.errors import ItemError

SR = SAMPLE_RATE


def noise(seconds: float, rate: int = SR, seed: int = 0, scale: float = 0.1) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(int(round(seconds * rate))) * scale).astype(np.float32)


def write(path, audio: np.ndarray, rate: int = SR, subtype: str = "FLOAT", fmt: str | None = None) -> str:
    sf.write(str(path), audio, rate, subtype=subtype, format=fmt)
    return str(path)


def rec(path, **span) -> dict:
    return {"audio_filepath": str(path), **span}


def blocks(record: dict, channel=None, **kw) -> tuple[list[np.ndarray], object]:
    fh, span = open_span(record, channel)
    with fh:
        out = list(iter_blocks(fh, span, **kw))
    return out, span


def fails(record: dict, *words: str, channel=None) -> str:
    with pytest.raises(ItemError) as err:
        read_span(record, SR, channel)
    message = str(err.value)
    assert record["audio_filepath"] in message, message
    for word in words:
        assert word in message, message
    return message


@pytest.fixture(scope="module")
def mono(tmp_path_factory):
    """5 s of float32 noise at 16 kHz: (path, samples)."""
    x = noise(5.0)
    return write(tmp_path_factory.mktemp("audio") / "mono.wav", x), x


# -- spans -----------------------------------------------------------------------------------------------------------
def test_offset_and_duration_give_the_exact_span(mono):
    path, x = mono
    np.testing.assert_array_equal(read_span(rec(path, offset=1.25, duration=2.0)), x[20000:52000])


def test_duration_without_offset_reads_from_the_start(mono):
    """S2S once read the whole file when a record had a duration but no offset."""
    path, x = mono
    np.testing.assert_array_equal(read_span(rec(path, duration=2.0)), x[:32000])


def test_offset_without_duration_or_with_duration_0_reads_to_the_end(mono):
    path, x = mono
    np.testing.assert_array_equal(read_span(rec(path, offset=3.0)), x[48000:])
    np.testing.assert_array_equal(read_span(rec(path, offset=3.0, duration=0.0)), x[48000:])
    np.testing.assert_array_equal(read_span(rec(path)), x)


def test_a_duration_past_the_end_reads_to_the_end_and_says_how_much_it_read(mono):
    path, x = mono
    out, span = blocks(rec(path, offset=4.0, duration=50.0))
    np.testing.assert_array_equal(np.concatenate(out), x[64000:])
    assert span.duration_s == 1.0 and span.offset_s == 4.0


def test_an_offset_at_or_past_the_end_or_negative_is_an_error_naming_the_fix(mono):
    path, _ = mono
    fails(rec(path, offset=5.0, duration=1.0), "offset 5 s is at or past the end of the file (5 s)", "fix the record")
    fails(rec(path, offset=500.0), "past the end")
    fails(rec(path, offset=-1.0), "negative offset")


def test_an_empty_span_is_an_error(mono):
    path, _ = mono
    fails(rec(path, offset=0.5, duration=1e-6), "no samples in the span", "offset 0.5 s")


# -- channels --------------------------------------------------------------------------------------------------------
def test_channels_are_averaged_or_one_is_picked(tmp_path):
    left, right, third = noise(1.0, seed=1), noise(1.0, seed=2), noise(1.0, seed=3)
    stereo = write(tmp_path / "s.wav", np.stack([left, right], axis=1))
    np.testing.assert_array_equal(read_span(rec(stereo)), (left + right) * np.float32(0.5))
    np.testing.assert_array_equal(read_span(rec(stereo), SR, 1), right)
    np.testing.assert_array_equal(read_span(rec(stereo), SR, 0), left)
    three = write(tmp_path / "t.wav", np.stack([left, right, third], axis=1))
    np.testing.assert_allclose(read_span(rec(three)), np.stack([left, right, third], axis=1).mean(axis=1),
                               atol=1e-7)


def test_a_channel_the_file_lacks_names_how_many_it_has(tmp_path):
    stereo = write(tmp_path / "s.wav", np.zeros((SR, 2), np.float32))
    fails(rec(stereo), "has 2 channel(s); channel 2 (0-based) does not exist", "channel to 0..1", channel=2)
    mono_path = write(tmp_path / "m.wav", np.zeros(SR, np.float32))
    fails(rec(mono_path), "has 1 channel(s); channel 1 (0-based) does not exist (leave channel unset)", channel=1)


# -- resampling ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000])
def test_other_rates_are_resampled_with_soxr_at_the_documented_quality(tmp_path, rate):
    x = noise(2.0, rate)
    path = write(tmp_path / f"r{rate}.wav", x, rate)
    got = read_span(rec(path, duration=2.0))
    assert got.dtype == np.float32 and len(got) == 2 * SR
    np.testing.assert_array_equal(got, soxr.resample(x, rate, SR, quality=RESAMPLE_QUALITY))


def test_any_target_rate(tmp_path):
    x = noise(1.0)
    path = write(tmp_path / "a.wav", x)
    assert len(read_span(rec(path), 22050)) == 22050
    np.testing.assert_array_equal(read_span(rec(path), 8000), soxr.resample(x, SR, 8000, quality=RESAMPLE_QUALITY))


# -- blocks ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("rate,dtype", [(SR, "float32"), (44100, "float32"), (44100, "int16"), (SR, "int16")])
def test_small_blocks_equal_one_whole_read(tmp_path, rate, dtype):
    """Streaming (any block size) gives the same samples as one read: memory stays flat, results do not move."""
    x = noise(3.3, rate, scale=0.3)
    path = write(tmp_path / "b.flac", np.stack([x, -0.5 * x], axis=1), rate, subtype="PCM_24", fmt="FLAC")
    record = rec(path, offset=0.4, duration=2.5)
    small, span = blocks(record, dtype=dtype, block_s=0.37)
    large, _ = blocks(record, dtype=dtype, block_s=BLOCK_S)
    assert len(small) > 5 and len(large) <= 2
    assert all(b.dtype == np.dtype(dtype) for b in small)
    np.testing.assert_array_equal(np.concatenate(small), np.concatenate(large))
    assert span.read == int(round(2.5 * rate))
    if dtype == "float32":
        np.testing.assert_array_equal(np.concatenate(small), read_span(record))


def test_on_source_sees_the_files_own_rate_and_selected_channel(tmp_path):
    left, right = noise(1.5, 44100, 1), noise(1.5, 44100, 2)
    path = write(tmp_path / "s.wav", np.stack([left, right], axis=1), 44100)
    seen = []
    blocks(rec(path), 1, block_s=0.5, on_source=lambda data, mono: seen.append((data.copy(), mono.copy())))
    assert all(d.shape[1] == 1 for d, _ in seen)
    np.testing.assert_array_equal(np.concatenate([d[:, 0] for d, _ in seen]), right)
    np.testing.assert_array_equal(np.concatenate([m for _, m in seen]), right)
    seen.clear()
    blocks(rec(path), None, on_source=lambda data, mono: seen.append((data, mono)))
    assert seen[0][0].shape == (len(left), 2)
    np.testing.assert_array_equal(seen[0][1], (left + right) * np.float32(0.5))


def test_an_unknown_dtype_is_refused(mono):
    with pytest.raises(ValueError, match="dtype"):
        blocks(rec(mono[0]), dtype="float64")


# -- int16 (TEN-VAD) -------------------------------------------------------------------------------------------------
def test_16bit_pcm_at_the_target_rate_passes_through_untouched(tmp_path):
    x = (np.random.default_rng(3).integers(-32768, 32768, (SR * 2, 2))).astype(np.int16)
    path = write(tmp_path / "p.wav", x, subtype="PCM_16")
    out, _ = blocks(rec(path, offset=0.5), 0, dtype="int16", block_s=0.3)
    np.testing.assert_array_equal(np.concatenate(out), x[SR // 2:, 0])
    mixed, _ = blocks(rec(path), None, dtype="int16")
    want = np.clip(np.rint((x[:, 0].astype(np.float32) + x[:, 1]) / 2), -32768, 32767).astype(np.int16)
    np.testing.assert_array_equal(np.concatenate(mixed), want)


def test_floats_become_int16_with_rounding_and_clipping(tmp_path):
    y = np.array([0.0, 0.5, -0.5, 1.0, -1.0, 1.7, -3.0, 1.4 / 32768, 1.6 / 32768], np.float32)
    path = write(tmp_path / "f.wav", y)
    out, _ = blocks(rec(path), dtype="int16")
    assert np.concatenate(out).tolist() == [0, 16384, -16384, 32767, -32768, 32767, -32768, 1, 2]


@pytest.mark.parametrize("subtype", ["FLOAT", "PCM_24", "PCM_32"])
def test_lossless_encodings_of_int16_give_the_same_int16(tmp_path, subtype):
    x = (noise(1.0, scale=0.3) * 32768).astype(np.int16)
    path = write(tmp_path / f"x_{subtype}.wav", x.astype(np.float32) / 32768, subtype=subtype)
    out, _ = blocks(rec(path), dtype="int16")
    np.testing.assert_array_equal(np.concatenate(out), x)


# -- bad samples and bad files ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_nan_and_inf_name_the_second_of_the_first_one_in_the_file(tmp_path, value):
    x = noise(4.0)
    x[3 * SR] = value
    path = write(tmp_path / "n.wav", x)
    fails(rec(path), "contains NaN or infinite samples (first at 3.000 s of the file)")
    fails(rec(path, offset=2.0, duration=1.5), "first at 3.000 s")
    np.testing.assert_array_equal(read_span(rec(path, duration=2.9)), x[:int(2.9 * SR)])  # before it: fine


def test_unreadable_files_say_why(tmp_path, mono):
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    text = tmp_path / "text.wav"
    text.write_bytes(b"this is not audio" * 100)
    zero = write(tmp_path / "zero.wav", np.zeros(0, np.float32))
    head = tmp_path / "head.wav"
    head.write_bytes(open(mono[0], "rb").read()[:30])
    fails(rec(tmp_path / "missing.wav", duration=1.0), "file not found", "audio_filepath")
    fails(rec(tmp_path), "is a directory")
    fails(rec(empty), "empty file (0 bytes)")
    fails(rec(text), "not a readable audio file")
    fails(rec(head), "not a readable audio file")
    fails(rec(zero), "no audio samples (0 frames)")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file (tests/vad checks this as user nobody)")
def test_permission_denied(tmp_path, mono):
    path = tmp_path / "locked.wav"
    path.write_bytes(open(mono[0], "rb").read())
    path.chmod(0)
    fails(rec(path), "permission denied")


def test_truncation_is_caught_where_it_can_be_known(tmp_path):
    x = (noise(8.0, scale=0.3) * 32768).astype(np.int16)
    cut = {}
    for name, subtype in (("wav", "PCM_16"), ("flac", "PCM_16"), ("mp3", "MPEG_LAYER_III")):
        data = open(write(tmp_path / f"full.{name}", x, subtype=subtype), "rb").read()
        cut[name] = tmp_path / f"cut.{name}"
        cut[name].write_bytes(data[:len(data) // 2])
    fails(rec(cut["wav"]), "truncated: the header promises 8.000 s of audio, the file holds 3.99")
    message = fails(rec(cut["flac"]), "truncated or corrupt audio data: decoding stopped at")
    stopped = float(message.split("decoding stopped at ")[1].split(" s")[0])
    assert 1.0 < stopped < 8.0, message
    fails(rec(cut["mp3"]), "truncated: the header promises", "could be decoded")
    out, _ = blocks(rec(cut["mp3"], duration=1.0), dtype="int16")  # a span inside what is there is fine
    assert sum(map(len, out)) == SR


def test_a_scan_header_error_does_not_stop_a_file_that_decodes(mono):
    """The directory scan's `header_error` may have been transient: the reader tries the file itself."""
    path, x = mono
    np.testing.assert_array_equal(read_span(rec(path, header_error="transient")), x)


# -- the option ------------------------------------------------------------------------------------------------------
def test_every_stage_has_the_same_channel_option():
    import dataclasses

    from amela.asr.config import AsrConfig
    from amela.config import from_dict
    from amela.errors import ConfigError
    from amela.quality.config import QualityConfig
    from amela.s2s.config import S2SConfig
    from amela.vad.config import VadConfig

    fields = []
    for cls in (VadConfig, AsrConfig, S2SConfig, QualityConfig):
        (field,) = [f for f in dataclasses.fields(cls) if f.name == "channel"]
        fields.append((field.default, field.type, field.metadata["help"]))
        required = {"model": "m.nemo"} if cls is AsrConfig else {}
        assert from_dict(cls, {**required, "channel": "1"}).channel == 1
        with pytest.raises(ConfigError, match="0-based"):
            from_dict(cls, {**required, "channel": -1})
    assert len(set(fields)) == 1 and fields[0][0] is None
