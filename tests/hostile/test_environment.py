"""Point 7: environment errors (full disk, read-only file system) are clear, with exit code 3, never tracebacks;
`amela status` only reads. Each case runs in a private mount namespace (`unshare`) with a small tmpfs."""
import shutil
import subprocess
import sys

import pytest

from tests.support.helpers import STAGE, make_manifest

from .helpers import amela


def _namespace_ok() -> bool:
    if not shutil.which("unshare"):
        return False
    return subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs tmpfs /mnt"], capture_output=True).returncode == 0


needs_mounts = pytest.mark.skipif(not _namespace_ok(), reason="needs unshare -rm and tmpfs mounts")


def in_namespace(script: str) -> subprocess.CompletedProcess:
    return subprocess.run(["unshare", "-rm", "bash", "-euc", script], capture_output=True, text=True)


@needs_mounts
def test_run_shard_on_a_full_disk_says_the_disk_is_full(tmp_path):
    manifest = make_manifest(tmp_path / "m.jsonl", 20)
    disk = tmp_path / "disk"
    disk.mkdir()
    py = sys.executable
    proc = in_namespace(f"""
        mount -t tmpfs -o size=1m tmpfs {disk}
        {py} -m amela prepare {STAGE} {manifest} -o {disk}/run --shards 1 >/dev/null
        dd if=/dev/zero of={disk}/fill bs=4k 2>/dev/null || true
        set +e
        {py} -m amela run-shard {disk}/run 0 --workers 1 --no-progress
        echo "rc=$?"
    """)
    assert "rc=3" in proc.stdout, proc.stdout + proc.stderr
    assert "No space left on device" in proc.stderr and "the disk is full" in proc.stderr
    assert "Traceback" not in proc.stderr and "keep dying" not in proc.stderr


@needs_mounts
def test_status_reads_a_read_only_run_directory_and_run_says_read_only(tmp_path):
    manifest = make_manifest(tmp_path / "m.jsonl", 6)
    run = tmp_path / "run"
    amela("prepare", STAGE, manifest, "-o", run, "--shards", 2, check=0)
    amela("run-shard", run, 0, "--workers", 0, check=0)
    py = sys.executable
    proc = in_namespace(f"""
        mount --bind {run} {run}
        mount -o remount,bind,ro {run}
        set +e
        {py} -m amela status {run}; echo "status rc=$?"
        {py} -m amela run {STAGE} {manifest} -o {run} --shards 2 --workers 0; echo "run rc=$?"
    """)
    assert "status rc=1" in proc.stdout, proc.stdout + proc.stderr  # 1: a shard is not done yet; but it answered
    assert "done" in proc.stdout and "missing" in proc.stdout
    assert "run rc=3" in proc.stdout and "Read-only file system" in proc.stderr
    assert "Traceback" not in proc.stderr


@needs_mounts
def test_items_failing_on_a_full_disk_stop_the_run_instead_of_failing_each(tmp_path):
    manifest = make_manifest(tmp_path / "m.jsonl", 30)
    disk = tmp_path / "disk"
    disk.mkdir()
    run = tmp_path / "run"
    py = sys.executable
    proc = in_namespace(f"""
        mount -t tmpfs -o size=256k tmpfs {disk}
        dd if=/dev/zero of={disk}/fill bs=4k 2>/dev/null || true
        set +e
        {py} -m amela run {STAGE} {manifest} -o {run} --workers 1 --write-files --out-dir {disk}/files --no-progress
        echo "rc=$?"
    """)
    assert "rc=3" in proc.stdout, proc.stdout + proc.stderr
    assert "No space left on device" in proc.stderr and "the disk is full" in proc.stderr
    assert not (run / "shards" / "00000" / "failures.partial").read_text()  # nothing blamed on the items


def test_a_reader_that_stops_reading_is_not_an_error(tmp_path):
    # `amela validate big.jsonl | head -1`: the pipe's reader goes away; amela stops quietly with 141, as a shell
    # tool stopped by SIGPIPE does, instead of "error: Broken pipe" (exit 3) or a traceback
    bad = tmp_path / "bad.jsonl"
    bad.write_text("".join(f'{{"audio_filepath": "/nope/{i}.wav"}}\n' for i in range(20000)))  # ~0.8 MB of problems
    proc = subprocess.Popen([sys.executable, "-m", "amela", "validate", str(bad)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    first = proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 141, err
    assert "bad.jsonl:1: missing 'duration'" in first
    assert err == ""
