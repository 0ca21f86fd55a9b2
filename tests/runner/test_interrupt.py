"""Interrupted runs (SIGTERM, SIGINT, SIGKILL of the runner, torn last lines) resume to the same output."""
import signal
import subprocess
import sys
import time

import pytest

from tests.support.helpers import STAGE, amela, make_manifest

N = 40


def start(manifest, run, shards=2, sleep_s="0.03"):
    return subprocess.Popen([sys.executable, "-m", "amela", "run", STAGE, str(manifest), "-o", str(run),
                             "--sleep-s", sleep_s, "--batch-size", "2", "--workers", "2", "--shards", str(shards)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_progress(run, min_lines, timeout_s=60):
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        n = sum(p.read_bytes().count(b"\n") for p in run.glob("shards/*/output.partial"))
        if n >= min_lines:
            return n
        time.sleep(0.02)
    raise AssertionError("run made no progress")


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ref")
    manifest = make_manifest(tmp / "m.jsonl", N)
    amela("run", STAGE, manifest, "-o", tmp / "run", "--batch-size", "2", "--shards", "2", check=0)
    return manifest, (tmp / "run" / "echo.jsonl").read_bytes()


def no_orphans(run):
    out = subprocess.run(["pgrep", "-f", "amela-worker|multiprocessing.spawn"], capture_output=True, text=True).stdout
    pids = [int(p) for p in out.split()]
    alive = []
    for pid in pids:
        try:
            with open(f"/proc/{pid}/environ", "rb") as fh:
                env = fh.read()
        except OSError:
            continue
        if str(run).encode() in env:
            alive.append(pid)
    return not alive


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130), (signal.SIGKILL, -9)])
@pytest.mark.parametrize("at_lines", [3, 25])
def test_interrupted_run_resumes_to_identical_output(tmp_path, reference, sig, code, at_lines):
    manifest, want = reference
    run = tmp_path / "run"
    proc = start(manifest, run)
    wait_for_progress(run, at_lines)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    if sig != signal.SIGKILL:
        assert "rerun the same command to resume" in err
    time.sleep(0.2)  # PDEATHSIG delivery after a SIGKILLed parent
    assert no_orphans(run)
    amela("status", run, check=1)
    amela("run", STAGE, manifest, "-o", run, "--sleep-s", "0.03", "--batch-size", "2", "--shards", "2", check=0)
    assert (run / "echo.jsonl").read_bytes() == want


def test_torn_last_line_is_dropped_and_redone(tmp_path, reference):
    manifest, want = reference
    run = tmp_path / "run"
    amela("run", STAGE, manifest, "-o", run, "--batch-size", "2", "--shards", "2", check=0)
    shard = run / "shards" / "00000"
    lines = (shard / "output.partial").read_bytes().splitlines(keepends=True)
    (shard / "output.partial").write_bytes(b"".join(lines[:5]) + lines[5][: len(lines[5]) // 2])
    for name in ("DONE", "stats.json"):
        (shard / name).unlink()
    proc = amela("run", STAGE, manifest, "-o", run, "--batch-size", "2", "--shards", "2", check=0)
    assert "dropped a torn last line" in proc.stderr
    assert (run / "echo.jsonl").read_bytes() == want
    idx = [int(line.split(b"\t")[0]) for line in (shard / "output.partial").read_bytes().splitlines()]
    assert idx == sorted(set(idx))  # no duplicates


def test_second_run_on_the_same_directory_is_refused(tmp_path, reference):
    manifest, want = reference
    run = tmp_path / "run"
    # one slow shard (1 s per item): still running long after the two commands below start, even on a loaded host
    proc = start(manifest, run, shards=1, sleep_s="1.0")
    wait_for_progress(run, 1)
    second = amela("run", STAGE, manifest, "-o", run, "--sleep-s", "1.0", "--batch-size", "2", "--shards", "1",
                   check=2)
    assert "in use by another process" in second.stderr
    shard_task = amela("run-shard", run, 0, check=2)
    assert "in use by another process" in shard_task.stderr
    proc.communicate(timeout=120)
    assert proc.returncode == 0
    assert (run / "echo.jsonl").read_bytes() == want


def test_stream_rows_of_an_uncommitted_item_are_redone_once(tmp_path):
    manifest = make_manifest(tmp_path / "m.jsonl", 6)
    ref, run = tmp_path / "ref", tmp_path / "run"
    amela("run", STAGE, manifest, "-o", ref, "--pieces", "2", check=0)
    amela("run", STAGE, manifest, "-o", run, "--pieces", "2", check=0)
    shard = run / "shards" / "00000"
    # a crash after an item's stream rows but before its output line (the commit) was written
    lines = (shard / "output.partial").read_bytes().splitlines(keepends=True)
    (shard / "output.partial").write_bytes(b"".join(lines[:-1]))
    for name in ("DONE", "stats.json"):
        (shard / name).unlink()
    proc = amela("run", STAGE, manifest, "-o", run, "--pieces", "2", check=0)
    assert "dropped 2 uncommitted pieces row(s)" in proc.stderr
    assert (run / "echo_pieces.jsonl").read_bytes() == (ref / "echo_pieces.jsonl").read_bytes()
    assert (run / "echo.jsonl").read_bytes() == (ref / "echo.jsonl").read_bytes()
