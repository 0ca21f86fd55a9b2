"""Through the VAD stage: formats, channels, spans and scaling give the right decisions; every kind of bad input fails
with its reason (the reader itself, amela/audio.py, is tested in tests/test_audio.py)."""
from __future__ import annotations

import os
import tempfile

import numpy as np
import pytest
import soundfile
import soxr

from amela.errors import ItemError
from amela.vad.config import VadConfig
from amela.vad.stage import VadStage

from .conftest import SR, frames_from_segments, record, run_stage, write

FRAME_S = 256 / SR


def frames(out) -> set[int]:
    return frames_from_segments(out["speech_segments"], FRAME_S)


def agreement(a: set[int], b: set[int], n: int) -> float:
    return 1 - len(a ^ b) / n


@pytest.fixture(scope="module")
def reference(stage, speech_wav, speech16):
    out = run_stage(stage, [record(speech_wav)])[0]
    return frames(out), len(speech16) // 256


@pytest.mark.parametrize("subtype", ["FLOAT", "PCM_24", "PCM_32"])
def test_lossless_16k_encodings_give_identical_decisions(tmp_path, stage, speech16, reference, subtype):
    """int16 samples stored as float32 / 24-bit / 32-bit are scaled back to the same int16 values."""
    path = write(tmp_path / f"x_{subtype}.wav", speech16.astype(np.float32) / 32768, subtype=subtype)
    assert frames(run_stage(stage, [record(path)])[0]) == reference[0]


def test_stereo_is_averaged_and_channel_picks_one(tmp_path, speech16, reference):
    quiet = (np.random.default_rng(1).standard_normal(len(speech16)) * 20).astype(np.int16)
    path = write(tmp_path / "stereo.wav", np.stack([speech16, quiet], axis=1), subtype="PCM_16")
    picked = VadStage(VadConfig(channel=0))
    picked.setup()
    assert frames(run_stage(picked, [record(path)])[0]) == reference[0]  # channel 0 is exactly the mono file
    other = VadStage(VadConfig(channel=1))
    other.setup()
    assert run_stage(other, [record(path)])[0]["speech_ratio"] < 0.05  # channel 1 is quiet noise
    averaged = VadStage(VadConfig())
    averaged.setup()
    mean = frames(run_stage(averaged, [record(path)])[0])
    assert agreement(mean, reference[0], reference[1]) > 0.9  # half amplitude: mostly the same decisions
    bad = VadStage(VadConfig(channel=2))
    bad.setup()
    (err,) = run_stage(bad, [record(path)])
    assert isinstance(err, ItemError) and "channel 2" in str(err) and "2 channel(s)" in str(err)


@pytest.mark.parametrize("rate,subtype,fmt,min_agree", [
    (48000, "PCM_16", "WAV", 0.98), (44100, "PCM_24", "FLAC", 0.98), (22050, "FLOAT", "WAV", 0.98),
    (8000, "PCM_16", "WAV", 0.5),  # narrowband: TEN-VAD loses the 4-8 kHz band (see docs/vad.md)
])
def test_other_rates_are_resampled(tmp_path, stage, speech16, reference, rate, subtype, fmt, min_agree):
    y = soxr.resample(speech16.astype(np.float32) / 32768, SR, rate)
    path = write(tmp_path / f"x{rate}.{fmt.lower()}", y, rate, subtype=subtype, fmt=fmt)
    out = run_stage(stage, [record(path)])[0]
    assert out["duration"] == pytest.approx(len(speech16) / SR, abs=1 / rate)
    assert agreement(frames(out), reference[0], reference[1]) >= min_agree
    assert out["speech_ratio"] > 0.2


def test_offset_and_duration_read_only_the_span(tmp_path, stage, speech16):
    full = write(tmp_path / "full.wav", speech16, subtype="PCM_16")
    cut = write(tmp_path / "cut.wav", speech16[2 * SR: 9 * SR], subtype="PCM_16")
    span = run_stage(stage, [{"audio_filepath": full, "duration": 7.0, "offset": 2.0, "speaker": "s1"}])[0]
    alone = run_stage(stage, [record(cut)])[0]
    # same decisions as the cut file (fresh state at the span's start), times in the full file's seconds
    assert span["speech_segments"] == [[round(s + 2.0, 4), round(e + 2.0, 4)] for s, e in alone["speech_segments"]]
    assert span["speech_ratio"] == alone["speech_ratio"]
    assert span["offset"] == 2.0 and span["duration"] == 7.0 and span["speaker"] == "s1"


def test_duration_past_the_end_is_corrected(tmp_path, stage, speech16):
    path = write(tmp_path / "short.wav", speech16[: 3 * SR], subtype="PCM_16")
    out = run_stage(stage, [{"audio_filepath": path, "duration": 50.0}])[0]
    assert out["duration"] == 3.0


def _expect_failure(stage, rec, *words):
    (out,) = run_stage(stage, [rec])
    assert isinstance(out, ItemError), out
    message = str(out)
    assert rec["audio_filepath"] in message
    for word in words:
        assert word in message, message


def test_bad_inputs_fail_with_reasons(tmp_path, stage, speech16, speech_wav):
    d = tmp_path
    empty = d / "empty.wav"
    empty.write_bytes(b"")
    zero = write(d / "zero.wav", np.zeros(0, np.int16), subtype="PCM_16")
    short = write(d / "short.wav", speech16[:100], subtype="PCM_16")
    truncated = d / "truncated.wav"
    truncated.write_bytes(open(speech_wav, "rb").read()[:30])
    text = d / "text.wav"
    text.write_bytes(b"this is not audio at all, only bytes named .wav\n" * 20)
    nan = speech16.astype(np.float32) / 32768
    nan[SR * 3] = np.nan
    inf = speech16.astype(np.float32) / 32768
    inf[SR] = np.inf
    nan_path, inf_path = write(d / "nan.wav", nan, subtype="FLOAT"), write(d / "inf.wav", inf, subtype="FLOAT")
    halves = {}
    for name, subtype in (("cut.flac", "PCM_16"), ("cut.mp3", "MPEG_LAYER_III")):  # data cut off mid-stream
        full = write(d / ("full_" + name), speech16[: 8 * SR], subtype=subtype)
        data = open(full, "rb").read()
        (d / name).write_bytes(data[: len(data) // 2])
        halves[name] = str(d / name)
    cases = [
        ({"audio_filepath": str(d / "missing.wav"), "duration": 1.0}, ["file not found"]),
        ({"audio_filepath": str(empty), "duration": 0.0}, ["empty file"]),
        ({"audio_filepath": zero, "duration": 0.0}, ["no audio samples"]),
        ({"audio_filepath": short, "duration": 100 / SR}, ["too short for one VAD frame", "100 samples"]),
        ({"audio_filepath": str(truncated), "duration": 0.0}, ["not a readable audio file"]),
        ({"audio_filepath": str(text), "duration": 0.0}, ["not a readable audio file"]),
        ({"audio_filepath": nan_path, "duration": 0.0}, ["NaN or infinite", "3.000 s"]),
        ({"audio_filepath": inf_path, "duration": 0.0}, ["NaN or infinite", "1.000 s"]),
        ({"audio_filepath": str(d), "duration": 1.0}, ["is a directory"]),
        ({"audio_filepath": halves["cut.flac"], "duration": 0.0}, ["corrupt audio data"]),
        ({"audio_filepath": halves["cut.mp3"], "duration": 0.0}, ["truncated", "could be decoded"]),
        ({"audio_filepath": speech_wav, "duration": 1.0, "offset": 500.0}, ["past the end"]),
    ]
    for rec, words in cases:
        _expect_failure(stage, rec, *words)
    # one batch with all of them and a good file: only the good one succeeds, in order
    outs = run_stage(stage, [c[0] for c in cases] + [record(speech_wav)])
    assert [isinstance(o, ItemError) for o in outs] == [True] * len(cases) + [False]


def test_permission_denied(stage, speech_wav):
    """Root reads any file, so as root the check runs in a forked child that dropped to user nobody."""
    directory = tempfile.mkdtemp(prefix="amela-vad-perm-")
    try:
        os.chmod(directory, 0o755)
        path = os.path.join(directory, "locked.wav")
        with open(speech_wav, "rb") as src, open(path, "wb") as dst:
            dst.write(src.read())
        os.chmod(path, 0)
        rec = {"audio_filepath": path, "duration": 1.0}
        if os.geteuid() != 0:
            _expect_failure(stage, rec, "permission denied")
            return
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: drop privileges, run the stage, report the outcome through the pipe
            try:
                os.setgroups([])
                os.setgid(65534)
                os.setuid(65534)
                out = stage.process([rec])[0]
                os.write(write_fd, f"{type(out).__name__}: {out}".encode())
            finally:
                os._exit(0)
        os.close(write_fd)
        os.waitpid(pid, 0)
        with os.fdopen(read_fd, "rb") as fh:
            reported = fh.read().decode()
        assert reported.startswith("ItemError:") and "permission denied" in reported and path in reported
    finally:
        os.chmod(os.path.join(directory, "locked.wav"), 0o644)
        for name in os.listdir(directory):
            os.unlink(os.path.join(directory, name))
        os.rmdir(directory)


def test_header_error_key_is_not_carried_into_outputs(stage, speech_wav):
    out = run_stage(stage, [{"audio_filepath": speech_wav, "duration": 0.0, "header_error": "transient"}])[0]
    assert "header_error" not in out
    assert out["duration"] == pytest.approx(soundfile.info(speech_wav).duration)
