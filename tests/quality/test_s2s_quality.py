"""S2S `--quality`: resynthesised and source audio scored with DNSMOS; the differences summarised over the run."""
from __future__ import annotations

import csv
import io

import pytest

from amela.errors import ConfigError
from tests.s2s.conftest import make_stage, stage_config, tiny  # noqa: F401 - `tiny` is a fixture used here

pytestmark = pytest.mark.slow  # builds the tiny fairseq models (shared with tests/s2s when run together)


def test_resynth_with_quality_scores_both_sides(tiny, tmp_path):  # noqa: F811
    from amela.quality.audio import read_span
    from amela.quality.dnsmos import Dnsmos

    stage = make_stage(tiny, tmp_path, mode="resynth", quality=True)
    records = tiny.records[:3]
    out = stage.process(records)
    scorer = Dnsmos()
    for record, result in zip(records, out):
        for k in ("sig", "bak", "ovrl", "p808"):
            assert result[f"dnsmos_{k}_delta"] == pytest.approx(result[f"dnsmos_{k}"] - result[f"source_dnsmos_{k}"],
                                                                abs=2e-5)
        # each side is what the scorer gives on that audio alone: the source span and the written file
        source = scorer.score([read_span(record, None, 1.0)[0]], 9.01)[0]
        written = scorer.score([read_span({"audio_filepath": result["audio_filepath"]}, None, 1.0)[0]], 9.01)[0]
        assert result["source_dnsmos_ovrl"] == pytest.approx(source.ovrl, abs=1e-4)
        assert result["dnsmos_ovrl"] == pytest.approx(written.ovrl, abs=1e-4)
    summary = stage.summary(lambda: iter(out))
    mean = sum(r["dnsmos_ovrl_delta"] for r in out) / len(out)
    assert summary["dnsmos_ovrl_delta"].startswith(f"mean {mean:+.3f}") and "(n=3)" in summary["dnsmos_ovrl_delta"]
    files = stage.reports(lambda: iter(out))
    rows = list(csv.DictReader(io.StringIO(files["s2s_quality.csv"].decode())))
    assert [r["source_audio_filepath"] for r in rows] == [r["audio_filepath"] for r in records]
    assert files["s2s_quality.png"][:4] == b"\x89PNG"
    assert stage.stats()["quality_s"] > 0


def test_without_quality_nothing_changes(tiny, tmp_path):  # noqa: F811
    stage = make_stage(tiny, tmp_path, mode="resynth")
    out = stage.process(tiny.records[:1])
    assert not any(k.startswith(("dnsmos", "source_dnsmos")) for k in out[0])
    assert stage.reports(lambda: iter(out)) == {} and "dnsmos_ovrl_delta" not in stage.summary(lambda: iter(out))


def test_quality_is_for_resynth_only(tiny):  # noqa: F811
    with pytest.raises(ConfigError, match="resynth only"):
        stage_config(tiny, mode="encode", quality=True)


def test_the_source_is_scored_on_the_channel_the_units_came_from(tiny, tmp_path):  # noqa: F811
    # a stereo source whose channels differ: with --channel 1, source_dnsmos_* is channel 1's score (the audio the
    # units were made from, decoded once), not the mix of both channels
    import numpy as np
    import soundfile as sf

    from amela.quality.audio import read_span
    from amela.quality.dnsmos import Dnsmos

    rng = np.random.default_rng(0)
    t = np.arange(16000 * 3) / 16000
    stereo = np.stack([0.5 * rng.standard_normal(len(t)), 0.3 * np.sin(2 * np.pi * 220 * t)], axis=1)
    path = tmp_path / "stereo.wav"
    sf.write(path, np.clip(stereo, -1, 1).astype(np.float32), 16000, subtype="FLOAT")
    record = {"audio_filepath": str(path), "duration": 3.0}
    stage = make_stage(tiny, tmp_path, mode="resynth", quality=True, channel=1)
    [result] = stage.process([record])
    scorer = Dnsmos()
    chan1, mixed = (scorer.score([read_span(record, c, 1.0)[0]], 9.01)[0] for c in (1, None))
    assert result["source_dnsmos_ovrl"] == pytest.approx(chan1.ovrl, abs=1e-4)
    assert abs(chan1.ovrl - mixed.ovrl) > 1e-3  # the case tells the two apart
