"""`amela status`: throughput so far, ETA for the whole run, --watch (in place on a terminal, plain lines otherwise)."""
import os
import pty
import re
import subprocess
import sys
import time

from tests.support.helpers import STAGE, amela, make_manifest


def test_interrupted_run_shows_throughput_and_eta(echo_run):
    run, _ = echo_run
    text = (run.parent / "status.txt").read_text()
    m = re.search(r"throughput so far: ([\d.]+) items/s, ([\d.]+) audio s/s .*; ETA (\d+):(\d\d):(\d\d) of processing "
                  r"once shards run again \(none is running now\)", text)
    assert m, text
    assert float(m[1]) > 0 and float(m[2]) > 0
    assert 0 < int(m[3]) * 3600 + int(m[4]) * 60 + int(m[5]) < 600
    done = amela("status", run, check=0).stdout
    assert "all items processed" in done


def test_watch_prints_blocks_until_the_run_completes(tmp_path):
    manifest = make_manifest(tmp_path / "m.jsonl", 16)
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "amela", "run", STAGE, str(manifest), "-o", str(run), "--sleep-s",
                             "0.4", "--batch-size", "1", "--workers", "1", "--no-report"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        while not any(p.stat().st_size for p in run.glob("shards/*/output.partial")):
            assert time.time() < deadline
            time.sleep(0.05)
        from amela.report import rundata

        live = rundata.load(run)  # a report of a running run: the running attempt drawn up to now
        assert [s.state for s in live.shards] == ["running"] and live.shards[0].attempts[-1].outcome == "running"
        assert live.stats is None
        watch = amela("status", run, "--watch", "0.5", check=0, timeout=120)
    finally:
        proc.wait(timeout=60)
    blocks = [b for b in watch.stdout.split("--- ") if b.strip()]
    assert len(blocks) >= 2, watch.stdout
    assert "\x1b[" not in watch.stdout  # not a terminal: plain text only
    assert re.search(r"ETA \d+:\d\d:\d\d at this rate \(1 shard\(s\) running\)", blocks[0]), blocks[0]
    assert "all items processed" in blocks[-1]


def test_watch_redraws_in_place_on_a_terminal(echo_run):
    run, _ = echo_run
    leader, follower = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "amela", "status", str(run), "--watch", "0.2"], stdout=follower,
                            stderr=subprocess.PIPE, env={**os.environ})
    os.close(follower)
    assert proc.wait(timeout=60) == 0  # a complete run: one screen, then done
    out = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    os.close(leader)
    text = out.decode()
    assert text.startswith("\x1b[H\x1b[2J") and "refreshing every 0.2 s" in text
