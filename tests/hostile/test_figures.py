"""Points 6 and 10: figures come from the audio; failures are summarised, not flooded."""
import json

from tests.support.helpers import STAGE, make_manifest

from .helpers import amela, write_wav


def test_a_flood_of_failures_is_counted_not_printed(tmp_path):
    manifest = make_manifest(tmp_path / "m.jsonl", 300, prefix="/nonexistent/a")
    run = tmp_path / "run"
    proc = amela("run", STAGE, manifest, "-o", run, "--workers", 0, "--require-file", "--batch-size", 50, check=1)
    assert proc.stderr.count(" failed (/nonexistent/") == 5  # the first few, then a count
    assert "300 item(s) failed" in proc.stderr
    assert "300 x ItemError: FILE: no such file" in proc.stdout
    stats = json.loads((run / "stats.json").read_text())
    assert stats["failure_reasons"] == {"ItemError: FILE: no such file": 300}
    assert len((run / "failures.jsonl").read_text().splitlines()) == 300  # every one kept
    log = (run / "logs" / "shard_00000.log").read_text()
    assert log.count(" failed (/nonexistent/") == 300


def test_hours_come_from_decoded_audio_not_from_the_manifest(tmp_path):
    wav = write_wav(tmp_path / "short.wav", seconds=2.0, rate=16000)
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"audio_filepath": str(wav), "duration": 86400.0}) + "\n")  # claims a day
    run = tmp_path / "run"
    proc = amela("run", "vad", manifest, "-o", run, "--workers", 0, check=0)
    stats = json.loads((run / "stats.json").read_text())
    assert abs(stats["audio_seconds"] - 2.0) < 0.01
    assert "0.001 h of audio" in proc.stdout
