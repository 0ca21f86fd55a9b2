"""Point 12: run and shard locks use flock; where flock answers ENOSYS (Lustre with noflock) they fall back to a
lease file (host, pid, heartbeat), taken over when stale. The tests make flock fail."""
import errno
import fcntl
import json
import logging
import os
import time

import pytest

from amela import cli, locks
from amela.errors import RunLockedError
from tests.support.helpers import STAGE, make_manifest, read_jsonl

REAL_FLOCK = fcntl.flock


@pytest.fixture
def no_flock(monkeypatch):
    def enosys(fd, op):
        raise OSError(errno.ENOSYS, "Function not implemented")

    monkeypatch.setattr(fcntl, "flock", enosys)
    monkeypatch.setattr(locks, "_announced", set())


def test_without_flock_a_lease_excludes_a_second_holder(tmp_path, no_flock, caplog):
    path = tmp_path / ".lock"
    caplog.set_level(logging.DEBUG, "amela.locks")
    first = locks.Lock(path, "run directory X").acquire()
    assert first.kind == "lease"
    info = json.loads(locks.lease_path(path).read_text())
    assert info["pid"] == os.getpid() and info["host"]
    with pytest.raises(RunLockedError, match=f"run directory X is in use.*pid {os.getpid()}"):
        locks.Lock(path, "run directory X").acquire()
    assert locks.is_held(path)
    first.release()
    assert not locks.lease_path(path).exists() and not locks.is_held(path)
    locks.Lock(path).acquire().release()
    assert sum("using lease locks" in r.message for r in caplog.records) == 1  # said once, not per lock


def test_a_stale_lease_is_taken_over(tmp_path, no_flock):
    path = tmp_path / ".lock"
    lp = locks.lease_path(path)
    lp.write_text(json.dumps({"host": "node-that-died", "pid": 1, "token": "old"}))
    assert locks.is_held(path)  # fresh heartbeat, other host: held
    old = time.time() - locks.STALE_S - 1
    os.utime(lp, (old, old))
    lock = locks.Lock(path).acquire()
    assert json.loads(lp.read_text())["pid"] == os.getpid()
    lock.release()


def test_a_lease_of_a_dead_process_on_this_host_is_taken_over_at_once(tmp_path, no_flock):
    import socket
    import subprocess

    dead = subprocess.Popen(["true"])
    dead.wait()
    path = tmp_path / ".lock"
    locks.lease_path(path).write_text(json.dumps({"host": socket.gethostname(), "pid": dead.pid, "token": "x"}))
    locks.Lock(path).acquire().release()


def test_flock_and_lease_agree(tmp_path, monkeypatch):
    """A lease taken where flock failed still excludes a process whose flock works (mixed mounts)."""
    path = tmp_path / ".lock"
    monkeypatch.setenv(locks.LOCK_ENV, "lease")
    held = locks.Lock(path).acquire()
    monkeypatch.delenv(locks.LOCK_ENV)
    with pytest.raises(RunLockedError):
        locks.Lock(path).acquire()
    held.release()
    with locks.Lock(path) as lock:
        assert lock.kind == "flock"


def test_a_whole_run_without_flock(tmp_path, no_flock, capsys):
    manifest = make_manifest(tmp_path / "m.jsonl", 8)
    run = tmp_path / "run"
    rc = cli.main(["run", STAGE, str(manifest), "-o", str(run), "--shards", "2", "--workers", "0", "--no-progress"])
    assert rc == 0, capsys.readouterr().err
    assert len(read_jsonl(run / "echo.jsonl")) == 8
    assert "using lease locks" in capsys.readouterr().err
    assert not list(run.rglob("*.lease"))  # every lease released
