"""The run report (amela report) shows the quality stage's own fields and bands its listening sample by DNSMOS OVRL."""
from __future__ import annotations

from amela.report.stages import QualitySection, sections_for


def test_the_quality_stages_fields_make_the_quality_section():
    (q,) = sections_for("quality", {})
    assert isinstance(q, QualitySection)
    for i in range(20):
        q.add({"audio_filepath": f"/x{i}.wav", "duration": 2.0, "peak_dbfs": -3.0 - i, "clipping_ratio": 0.0,
               "bandwidth_hz": 8000.0, "dnsmos_ovrl": 1 + i / 6, "dnsmos_windows": 1})
    html = q.html()
    assert q.n == 20 and "dnsmos_ovrl" in html and "peak_dbfs" in html and "dnsmos_windows" not in html
    band, picks = q.listen()
    assert band == "dnsmos_ovrl quartile" and len({b for b, _ in picks}) == 4


def test_s2s_quality_deltas_are_shown_and_band_the_listening():
    secs = sections_for("s2s", {})
    q = secs[1]
    for i in range(8):
        q.add({"audio_filepath": f"/r{i}.wav", "duration": 1.0, "dnsmos_ovrl": 2.0, "source_dnsmos_ovrl": 3.0,
               "dnsmos_ovrl_delta": -1.0 + i / 10})
    assert "source_dnsmos_ovrl" in q.html() and q.listen()[0] == "dnsmos_ovrl_delta quartile"
