"""The stage called directly (setup + process): units against an independent reference, synthesis lengths, files."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from amela.errors import ConfigError, ItemError
from amela.s2s.kmeans import expand

from .conftest import make_stage, read, reference_units, stage_config


@pytest.fixture(scope="module")
def encoder(tiny):
    return make_stage(tiny, mode="encode", frame_units=True)


def test_units_equal_the_reference_and_deduplicate(tiny, encoder):
    out = encoder.process(tiny.records)
    for record, result in zip(tiny.records, out):
        ref = reference_units(tiny, read(record["audio_filepath"]))
        assert result["frame_units"] == ref
        assert expand(result["units"], result["unit_durations"]) == ref
        assert all(a != b for a, b in zip(result["units"], result["units"][1:]))
        assert result["text"] == record["text"] and result["audio_filepath"] == record["audio_filepath"]
        assert "units" not in record  # the input record is not mutated
    assert len({u for r in out for u in r["units"]}) > 3  # the test audio exercises several units


def test_batched_equals_one_at_a_time(tiny, encoder):
    # 2.5 s and 2.3 s share a padded forward pass (within 80% of each other); the others run on their own
    records = tiny.records + [{**tiny.records[2], "offset": 0.2, "duration": 2.3}]
    before = encoder.stats().get("forward_batches", 0)
    batched = encoder.process(records)
    assert encoder.stats()["forward_batches"] - before == len(records) - 1
    single = [encoder.process([r])[0] for r in records]
    assert [r["frame_units"] for r in batched] == [r["frame_units"] for r in single]


def test_long_audio_is_chunked_and_stitched(tiny):
    stage = make_stage(tiny, mode="encode", frame_units=True, chunk_s=1.0)
    record = tiny.records[2]  # 2.5 s -> chunks of 1.0, 1.0, 0.5 s
    wav = read(record["audio_filepath"])
    got = stage.process([record])[0]["frame_units"]
    assert got == reference_units(tiny, wav, chunk_samples=16000)
    assert len(got) == 49 + 49 + 24  # frames per chunk: (n - 400) // 320 + 1


def test_a_duration_without_offset_encodes_only_that_span_and_channel_picks_one(tiny, encoder, tmp_path):
    """The records' `duration` applies without an `offset` too (S2S once read the whole file then), and `channel`
    means what it means in every stage: that channel alone, unset the average."""
    record = tiny.records[2]  # 2.5 s
    wav = read(record["audio_filepath"])
    head = encoder.process([{"audio_filepath": record["audio_filepath"], "duration": 1.0}])[0]
    assert head["frame_units"] == reference_units(tiny, wav[:16000])
    assert len(head["frame_units"]) < len(reference_units(tiny, wav))
    stereo = tmp_path / "stereo.wav"
    other = (np.random.default_rng(3).standard_normal(len(wav)) * 0.3).astype(np.float32)
    sf.write(stereo, np.stack([wav.numpy(), other], axis=1), 16000, subtype="FLOAT")
    both = {"audio_filepath": str(stereo), "duration": 2.5}
    picked = make_stage(tiny, mode="encode", frame_units=True, channel=0).process([both])[0]
    assert picked["frame_units"] == reference_units(tiny, wav)
    averaged = encoder.process([both])[0]
    assert averaged["frame_units"] == reference_units(tiny, torch.from_numpy((wav.numpy() + other) * np.float32(0.5)))
    assert averaged["frame_units"] != picked["frame_units"]


def test_bad_and_short_audio_fail_alone(tiny, encoder, tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF not really a wav")
    short = tmp_path / "short.wav"
    sf.write(short, np.zeros(300, dtype=np.float32), 16000)
    batch = [tiny.records[0], {"audio_filepath": str(bad), "duration": 1.0},
             {"audio_filepath": str(short), "duration": 300 / 16000}, tiny.records[1]]
    out = encoder.process(batch)
    assert isinstance(out[1], ItemError) and "bad.wav: not a readable audio file" in str(out[1])
    assert isinstance(out[2], ItemError) and "short.wav" in str(out[2]) and "shorter than one unit" in str(out[2])
    assert out[0]["frame_units"] == reference_units(tiny, read(tiny.records[0]["audio_filepath"]))
    assert out[3]["frame_units"] == reference_units(tiny, read(tiny.records[1]["audio_filepath"]))


def test_segments_by_offset(tiny, encoder):
    record = tiny.records[2]
    seg = {**record, "offset": 0.5, "duration": 1.0}
    wav = read(record["audio_filepath"])[8000:24000]
    assert encoder.process([seg])[0]["frame_units"] == reference_units(tiny, wav)


def test_resampled_stereo_input(tiny, encoder, tmp_path):
    import soxr

    mono = read(tiny.records[0]["audio_filepath"]).numpy()
    at_8k = soxr.resample(mono, 16000, 8000)
    path = tmp_path / "stereo8k.wav"
    sf.write(path, np.stack([at_8k, at_8k], axis=1), 8000, subtype="FLOAT")
    got = encoder.process([{"audio_filepath": str(path), "duration": 1.0}])[0]["frame_units"]
    expected = reference_units(tiny, torch.from_numpy(soxr.resample(at_8k, 8000, 16000).astype(np.float32)))
    assert got == expected


def test_unit_files(tiny, tmp_path):
    for fmt in ("npy", "pt"):
        stage = make_stage(tiny, tmp_path / fmt, mode="encode", units_format=fmt, input_root=str(tiny.audio))
        out = stage.process(tiny.records[:2])
        for _record, result in zip(tiny.records[:2], out):
            assert result["units_filepath"].startswith(str(tmp_path / fmt / "a" / "f"))
            assert result["units_filepath"].endswith("." + fmt)
            if fmt == "npy":
                frames = np.load(result["units_filepath"]).tolist()
            else:
                frames = torch.load(result["units_filepath"]).tolist()
            assert frames == expand(result["units"], result["unit_durations"])


def test_encode_then_synth_gives_expected_lengths(tiny, encoder, tmp_path):
    encoded = encoder.process(tiny.records)
    synth = make_stage(tiny, tmp_path, mode="synth", input_root=str(tiny.audio))
    hop = 320
    for enc, out in zip(encoded, synth.process(encoded)):
        data, sr = sf.read(out["audio_filepath"])
        assert sr == 16000
        assert len(data) == sum(enc["unit_durations"]) * hop
        assert out["duration"] == len(data) / 16000
        assert out["source_audio_filepath"] == enc["audio_filepath"]
        assert np.abs(data).max() > 0.01  # not silence


def test_synth_with_duration_predictor_and_bad_units(tiny, tmp_path):
    synth = make_stage(tiny, tmp_path, mode="synth", dur_prediction=True)
    rec = {"audio_filepath": str(tiny.audio / "a" / "f0.wav"), "duration": 1.0, "units": [1, 2, 3, 4]}
    out = synth.process([rec, {**rec, "audio_filepath": "/elsewhere/x.wav", "units": [1, 99]},
                         {**rec, "audio_filepath": "/elsewhere/y.wav", "units": []}])
    assert len(sf.read(out[0]["audio_filepath"])[0]) % 320 == 0
    assert isinstance(out[1], ItemError) and "unit 99 is outside" in str(out[1]) and "/elsewhere/x.wav" in str(out[1])
    assert isinstance(out[2], ItemError) and "no 'units'" in str(out[2])


def test_resynth_mirrors_the_input_tree(tiny, tmp_path):
    stage = make_stage(tiny, tmp_path, mode="resynth", input_root=str(tiny.audio))
    out = stage.process(tiny.records)
    rel = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*.wav"))
    assert rel == ["a/f0.wav", "a/f1.wav", "a/f2.wav", "b/c/f3.wav"]
    for record, result in zip(tiny.records, out):
        assert result["audio_filepath"] == str(tmp_path / record["audio_filepath"][len(str(tiny.audio)) + 1:])
        assert result["source_audio_filepath"] == record["audio_filepath"]
        frames = len(reference_units(tiny, read(record["audio_filepath"])))
        assert len(sf.read(result["audio_filepath"])[0]) == frames * 320


def test_resynth_without_input_root_uses_the_absolute_path(tiny, tmp_path):
    stage = make_stage(tiny, tmp_path, mode="resynth")
    out = stage.process(tiny.records[:1])
    assert out[0]["audio_filepath"] == str(tmp_path / tiny.records[0]["audio_filepath"].lstrip("/"))


def test_check_input(tiny):
    from amela.s2s.stage import S2SStage

    outside = {"audio_filepath": "/somewhere/else.wav", "duration": 1.0}
    stage = S2SStage(stage_config(tiny, mode="resynth", input_root=str(tiny.audio)))
    stage.check_input(tiny.records)
    with pytest.raises(ConfigError, match="not under --input-root"):
        stage.check_input(tiny.records + [outside])
    segs = [{**tiny.records[0], "offset": 0.0, "duration": 0.5}, {**tiny.records[0], "offset": 0.5, "duration": 0.5}]
    stage.check_input(segs)  # segments of one file get distinct output names
    with pytest.raises(ConfigError, match="needs records with 'units'"):
        S2SStage(stage_config(tiny, mode="synth")).check_input(tiny.records)


def test_batches_sort_by_duration_and_respect_the_budget(tiny):
    from amela.s2s.stage import S2SStage

    records = [{"audio_filepath": f"/a/{i}.wav", "duration": d} for i, d in enumerate([5, 1, 3, 250, 2, 4])]
    stage = S2SStage(stage_config(tiny, batch_s=10, chunk_s=100))
    batches = stage.batches(records)
    assert sorted(i for b in batches for i in b) == list(range(6))
    flat = [records[i]["duration"] for b in batches for i in b]
    assert flat == sorted(flat)
    for b in batches:
        if len(b) > 1:
            assert max(min(records[i]["duration"], 100) for i in b) * len(b) <= 10


def test_config_checks(tiny):
    with pytest.raises(ConfigError, match="layer must be >= 1"):
        stage_config(tiny, layer=0)
    with pytest.raises(ConfigError, match="encode only"):
        stage_config(tiny, mode="resynth", frame_units=True)
    with pytest.raises(ConfigError, match="mode must be one of"):
        stage_config(tiny, mode="decode")


def test_setup_rejects_mismatched_models(tiny, tmp_path):
    np.save(tmp_path / "km16.npy", np.zeros((4, 16), dtype=np.float32))
    with pytest.raises(ConfigError, match="16-dim centroids"):
        make_stage(tiny, kmeans=str(tmp_path / "km16.npy"))
    np.save(tmp_path / "km50.npy", np.zeros((50, 32), dtype=np.float32))
    with pytest.raises(ConfigError, match="50 units but the vocoder only 12"):
        make_stage(tiny, mode="resynth", kmeans=str(tmp_path / "km50.npy"))


def test_vocoder_checkpoint_errors(tiny, tmp_path):
    from amela.s2s.models import ModelFileError

    truncated = tmp_path / "g_trunc"
    truncated.write_bytes(open(tiny.vocoder, "rb").read()[:1000])
    with pytest.raises(ModelFileError, match="g_trunc.*corrupt or truncated"):
        make_stage(tiny, mode="synth", vocoder=str(truncated))
    with pytest.raises(ConfigError, match="--vocoder-config"):
        make_stage(tiny, mode="synth", vocoder=str(truncated), vocoder_config=None)


def test_doctor_reports_fairseq():
    from amela.s2s.stage import S2SStage

    checks = {what: ok for what, ok, _ in S2SStage.doctor()}
    assert checks["fairseq installed"] and checks["fairseq imports with the compat shims"]


class OomReader:
    """Wraps the real HuBERT reader; fails like CUDA does when a forward gets more than `limit_s` of padded audio."""

    def __init__(self, inner, limit_s):
        self.inner, self.limit_s, self.calls = inner, limit_s, []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def features(self, waves):
        padded_s = max(len(w) for w in waves) * len(waves) / 16000
        self.calls.append((padded_s, len(waves), padded_s > self.limit_s))
        if padded_s > self.limit_s:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.00 GiB")
        return self.inner.features(waves)


def test_out_of_memory_halves_the_batch_and_keeps_the_budget(tiny):
    span = tiny.records[2]  # 2.5 s: three 1 s spans of it, plus a 1 s and a 0.75 s file
    records = [tiny.records[0]] + [dict(span, offset=o, duration=1.0) for o in (0.0, 0.7, 1.4)] + [tiny.records[3]]
    reference = make_stage(tiny, mode="encode", frame_units=True).process(records)
    stage = make_stage(tiny, mode="encode", frame_units=True, batch_s=40.0)
    stage.reader = OomReader(stage.reader, limit_s=3.0)
    out = stage.process(records)
    assert [r["frame_units"] for r in out] == [r["frame_units"] for r in reference]
    stats = stage.stats()
    failed = [i for i, (_, _, oom) in enumerate(stage.reader.calls) if oom]
    assert stats["oom_halvings"] == len(failed) >= 1
    assert stats["batch_s_budget_min"] <= 20.0
    assert all(s <= stats["batch_s_budget_min"] or n == 1 for s, n, _ in stage.reader.calls[failed[-1] + 1:])
    # A chunk that does not fit even alone fails its record only, with the fix in the message.
    stage.reader = OomReader(stage.reader.inner, limit_s=0.9)
    out = stage.process(records)
    assert all(isinstance(r, ItemError) and "--chunk-s" in str(r) and rec["audio_filepath"] in str(r)
               for r, rec in zip(out[:4], records))
    assert out[4]["frame_units"] == reference[4]["frame_units"]


def test_the_default_budget_comes_from_free_memory():
    from amela.s2s import budget

    assert budget.planning_budget(None, "cpu", 100.0) == budget.CPU_BATCH_SECONDS
    assert budget.planning_budget(50.0, "cuda", 100.0) == 50.0
    gib = 2**30
    # More free memory, a bigger budget; never below one chunk; capped.
    small, big = budget.budget_from_free_bytes(2 * gib, 30.0), budget.budget_from_free_bytes(4 * gib, 30.0)
    assert 30.0 <= small < big <= budget.MAX_BATCH_SECONDS
    assert budget.budget_from_free_bytes(80 * gib, 30.0) == budget.MAX_BATCH_SECONDS
    assert budget.budget_from_free_bytes(0, 30.0) == 30.0
    # The conv front end's transient follows the chunk length: longer chunks leave less for the batch.
    assert budget.budget_from_free_bytes(3 * gib, 10.0) > budget.budget_from_free_bytes(3 * gib, 60.0) >= 60.0


def test_output_duration_is_the_decoded_audio_not_the_manifests(tiny, encoder):
    record = tiny.records[0]
    claimed = {**record, "duration": record["duration"] + 30.0}
    out_claimed, out_exact = encoder.process([claimed, dict(record)])
    assert out_claimed["duration"] == pytest.approx(record["duration"], abs=1e-3)
    assert out_exact["duration"] == record["duration"] and out_exact["units"] == out_claimed["units"]
