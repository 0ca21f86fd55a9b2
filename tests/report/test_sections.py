"""Stage sections from output records as the ASR, S2S and quality stages write them (the sections are pure functions
of the records, so no model has to run here), and the listening sample's audio."""
import base64
import re

import numpy as np
import soundfile as sf

from amela.report import listen
from amela.report.collect import LogHist, Strata, bands
from amela.report.rundata import group_failures, normalise
from amela.report.stages import AsrSection, QualitySection, S2SSection, sections_for

from .conftest import tone


def asr_records(n=40):
    out = []
    for i in range(n):
        ref = "the quick brown fox jumps over the lazy dog"
        hyp = ref if i % 4 == 0 else ("the quick brown fox" if i % 4 == 1 else ("" if i == 2 else "a quick brown cat"))
        out.append({"audio_filepath": f"/data/u{i}.wav", "duration": 2.0 + i % 7, "text": ref, "pred_text": hyp})
    return out


def test_asr_section_scores_against_references_and_flags_outputs():
    sec = AsrSection({"text_key": "pred_text"})
    records = asr_records()
    for r in records:
        sec.add(r)
    html = sec.html()
    assert sec.with_ref == len(records) and sec.empty == 1
    from amela.asr.eval import evaluate

    _, summary = evaluate(records, "text", "pred_text")
    assert re.search(rf"<th>WER</th><td>{summary['wer']:.3g}</td>", html), "corpus WER as asr-eval computes it"
    assert "WER per record" in html
    rows = re.findall(r"<tr><td>[^<]*</td><td>u\d+\.wav</td>", html.split("<h3>Flagged outputs</h3>")[0])
    assert len(rows) == 24  # the transcript sample, stratified by WER band
    flagged = html.split("<h3>Flagged outputs</h3>")[1]
    assert flagged.count("<td>longest</td>") == 5 and "<td>(empty)</td>" in flagged  # u2 has no transcript


def test_asr_section_without_references_is_stratified_by_duration():
    sec = AsrSection({"text_key": "text"})  # transcripts in 'text': nothing to compare with
    for r in asr_records():
        sec.add({**r, "text": r["pred_text"]})
    html = sec.html()
    assert "WER" not in html and sec.listen()[0] == "duration"


def test_s2s_section_pairs_source_and_resynthesis(tmp_path):
    src, out = tmp_path / "src.wav", tmp_path / "out.wav"
    sf.write(src, tone(3.0, 220), 16000)
    sf.write(out, tone(2.9, 220), 16000)
    sec = S2SSection({"mode": "resynth"})
    r = {"audio_filepath": str(out), "duration": 2.9, "source_audio_filepath": str(src), "source_duration": 3.0,
         "units": list(range(150))}
    sec.add(r)
    assert "<td>50</td>" in sec.html().replace(" ", "") or "units per second" in sec.html()
    assert sec.units / sec.source_s == 50
    html = listen.render(sec, *sec.listen())
    labels = re.findall(r"<span>(source|resynthesised) · ", html)
    assert labels == ["source", "resynthesised"]
    clips = re.findall(r'base64,([A-Za-z0-9+/=]+)"', html)
    decoded = [sf.info(__import__("io").BytesIO(base64.b64decode(c))) for c in clips]
    assert [round(d.duration, 1) for d in decoded] == [3.0, 2.9] and all(d.format == "OGG" for d in decoded)
    sizes = [len(base64.b64decode(c)) for c in clips]
    assert sizes[0] / 3.0 < 4000 and sizes[1] / 2.9 < 4000  # low bit rate: ~16 kbit/s is ~2 KB per second


def test_quality_scores_found_in_any_stage_output():
    secs = sections_for("vad", {})
    assert [type(s) for s in secs][1] is QualitySection
    q = secs[1]
    for i in range(30):
        q.add({"audio_filepath": f"/x{i}", "duration": 1.0, "quality": {"dnsmos": 1 + i / 10}, "quality_snr_db": i})
    html = q.html()
    assert q.n == 30 and "quality.dnsmos" in html and "quality_snr_db" in html
    band, picks = q.listen()
    assert band == "quality.dnsmos quartile" and len(picks) == 12
    assert len({b for b, _ in picks}) == 4  # every quartile is heard


def test_listening_cap_and_unreadable_files(tmp_path):
    good = tmp_path / "g.wav"
    sf.write(good, tone(4.0, 300), 16000)
    sec = sections_for("echo", {})[0]
    for i, path in enumerate([good, tmp_path / "gone.wav", good]):
        sec.add({"audio_filepath": str(path), "duration": 4.0 - i * 0.1})
    html = listen.render(sec, "duration", [("b", r) for r in sec.strata.res[1].items])
    assert html.count("<audio") == 2 and "not playable here" in html and "gone.wav" in html
    capped = listen.render(sec, "duration", [("b", r) for r in sec.strata.res[1].items], cap_bytes=1)
    assert capped.count("<audio") == 1 and "size cap" in capped


def test_failure_reasons_normalise_paths_numbers_and_names():
    assert normalise("/a/b.wav: header says 12 frames, got 3 in 'x'", "/a/b.wav") == \
        "<file>: header says <n> frames, got <n> in <name>"
    fails = [{"error_type": "ItemError", "message": f"/d/{i}.wav: empty", "audio_filepath": f"/d/{i}.wav"}
             for i in range(7)] + [{"error_type": "WorkerCrash", "message": "worker died", "signal": 11}]
    reasons, total = group_failures(fails)
    assert total == 8
    assert [(r.error_type, r.count, len(r.examples)) for r in reasons] == [("ItemError", 7, 3),
                                                                            ("WorkerCrash (signal 11)", 1, 1)]


def test_streaming_aggregates():
    h = LogHist()
    for v in (0.5, 0.5, 50.0, 0.0):
        h.add(v)
    edges, counts = h.bins()
    assert sum(counts) == 3 and h.nonpositive == 1 and edges[0] <= 0.5 < edges[1] and edges[-2] <= 50 < edges[-1]
    s = Strata(bands([0, 0.5, 1.0]), 2)
    for v in np.linspace(0, 0.99, 100):
        s.add(float(v), float(v))
    assert [c for _, c in s.counts()] == [50, 50]  # 0.00..0.49 and 0.50..0.99
    picks = s.picks(4)
    assert [b for b, _ in picks] == ["0–0.5", "0.5–1", "0–0.5", "0.5–1"]  # round-robin over the bands


def test_model_files_are_listed_with_sha256_once(tmp_path):
    import hashlib

    from amela.paths import RunPaths
    from amela.report.models import model_rows

    dense, km = tmp_path / "hubert.pt", tmp_path / "km.npy"
    dense.write_bytes(b"weights" * 1000)
    km.write_bytes(b"centroids")
    options = {"dense": str(dense), "kmeans": str(km), "vocoder": "no-such-vocoder", "mode": "encode"}
    rows = model_rows("s2s", options, tmp_path)
    by_key = {r[0]: r for r in rows}
    assert by_key["dense"][3] == hashlib.sha256(dense.read_bytes()).hexdigest()
    assert by_key["kmeans"][3] == hashlib.sha256(b"centroids").hexdigest()
    assert by_key["vocoder"][3] == "" and "not found here" in by_key["vocoder"][4]
    assert RunPaths(tmp_path).model_hashes.exists()
    km.write_bytes(b"other centroids")  # a changed file (size, mtime) is hashed again
    assert {r[0]: r for r in model_rows("s2s", options, tmp_path)}["kmeans"][3] == \
        hashlib.sha256(b"other centroids").hexdigest()
