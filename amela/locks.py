"""The one lock of AMELA: `flock` on a lock file, with a lease file where the file system has no `flock`.

Lustre mounted with `noflock` answers flock() with ENOSYS (and some NFS set-ups with ENOLCK or EOPNOTSUPP): every
run would stop there. Then the lock is a lease instead: a file created exclusively (O_EXCL, atomic on every shared
file system) holding host, pid and a heartbeat that a thread refreshes; a lease whose heartbeat stopped (its holder
was killed, or its node died) is taken over. `AMELA_LOCK=lease` forces leases, for `localflock` mounts where flock
works but only within one node (two nodes could both hold "the" lock). docs/platforms.md says what holds where.
"""
from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import socket
import threading
import time
import uuid
from pathlib import Path

from .errors import RunLockedError

logger = logging.getLogger("amela.locks")
LOCK_ENV = "AMELA_LOCK"  # "flock" (default, with the lease fallback) or "lease"
HEARTBEAT_S = 15.0  # how often a lease holder refreshes its file
STALE_S = 90.0  # a lease not refreshed for this long is abandoned: taken over
NO_FLOCK = (errno.ENOSYS, errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL)
_announced: set[str] = set()


def _announce(kind: str, path: Path, why: str = "") -> None:
    if kind not in _announced:
        _announced.add(kind)
        level = logging.WARNING if kind == "lease" else logging.DEBUG
        logger.log(level, "locks: using %s locks%s (first: %s)", kind, f" ({why})" if why else "", path)


def lease_path(path: Path) -> Path:
    return path.with_name(path.name + ".lease")


class Lock:
    """An exclusive lock on `path` (a lock file). `acquire()` fails at once with RunLockedError naming `what`
    when another process holds it, or waits (`wait=True`, e.g. the prepare step that many array tasks race for)."""

    def __init__(self, path: str | os.PathLike, what: str = ""):
        self.path = Path(path)
        self.what = what or str(self.path)
        self.kind: str | None = None
        self._fd: int | None = None
        self._token = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- public ------------------------------------------------------------------------------------------------------
    def acquire(self, wait: bool = False, poll_s: float = 0.2) -> Lock:
        while not self._try():
            if not wait:
                raise RunLockedError(f"{self.what} is in use by another process ({self._holder()}); wait for it or "
                                     "stop it")
            time.sleep(poll_s)
        return self

    def release(self) -> None:
        if self.kind == "flock" and self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
        elif self.kind == "lease":
            self._stop.set()
            if self._thread is not None:
                self._thread.join()
            lp = lease_path(self.path)
            if _read(lp).get("token") == self._token:
                _unlink(lp)
        self.kind = None

    def __enter__(self) -> Lock:
        return self.acquire()

    def __exit__(self, *_) -> None:
        self.release()

    # -- flock -------------------------------------------------------------------------------------------------------
    def _try(self) -> bool:
        if os.environ.get(LOCK_ENV, "flock") != "lease":
            got = self._try_flock()
            if got is not None:
                return got
        return self._try_lease()

    def _try_flock(self) -> bool | None:
        """True/False when flock answered; None when this file system has none (then: a lease)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        except OSError as exc:
            os.close(fd)
            if exc.errno in NO_FLOCK:
                _announce("lease", self.path, f"flock: {exc.strerror}; e.g. Lustre mounted with noflock")
                return None
            raise
        # A lease left by a process on a file system that had no flock at the time (or AMELA_LOCK=lease elsewhere)
        # still counts: both kinds must agree on who holds the lock.
        if _lease_alive(lease_path(self.path)):
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
            return False
        _announce("flock", self.path)
        self._fd, self.kind = fd, "flock"
        return True

    # -- lease -------------------------------------------------------------------------------------------------------
    def _try_lease(self) -> bool:
        lp = lease_path(self.path)
        lp.parent.mkdir(parents=True, exist_ok=True)
        if lp.exists() and not _take_over_if_stale(lp):
            return False
        token = uuid.uuid4().hex
        try:
            fd = os.open(lp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
        except FileExistsError:
            return False  # another process was quicker
        with os.fdopen(fd, "w") as fh:
            fh.write(_lease_text(token))
        _announce("lease", self.path, f"{LOCK_ENV}=lease" if os.environ.get(LOCK_ENV) == "lease" else "")
        self._token, self.kind = token, "lease"
        self._stop.clear()
        self._thread = threading.Thread(target=self._heartbeat, name="amela-lease", daemon=True)
        self._thread.start()
        return True

    def _heartbeat(self) -> None:
        lp = lease_path(self.path)
        while not self._stop.wait(HEARTBEAT_S):
            try:
                if _read(lp).get("token") != self._token:
                    logger.error("lock %s was taken over by another process (this one looked dead to it)", lp)
                    return
                os.utime(lp)  # the heartbeat is the file's mtime: one metadata update, no rewrite
            except OSError as exc:
                logger.warning("lock %s: heartbeat failed: %s", lp, exc)

    def _holder(self) -> str:
        info = _read(lease_path(self.path))
        if info:
            return f"lease {lease_path(self.path)}: host {info.get('host')}, pid {info.get('pid')}"
        return f"lock {self.path}"


def _lease_text(token: str) -> str:
    return json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "token": token, "since": time.time()})


def _read(lp: Path) -> dict:
    try:
        return json.loads(lp.read_text() or "{}")
    except (OSError, ValueError):
        return {}


def _unlink(p: Path) -> None:
    try:
        p.unlink()
    except FileNotFoundError:
        pass


def _lease_alive(lp: Path) -> bool:
    """A lease exists and its holder looks alive: heartbeat fresh, and (same host) the process exists."""
    try:
        age_s = time.time() - lp.stat().st_mtime
    except FileNotFoundError:
        return False
    info = _read(lp)
    if info.get("host") == socket.gethostname() and isinstance(info.get("pid"), int):
        try:
            os.kill(info["pid"], 0)
        except ProcessLookupError:
            return False  # its process is gone: no need to wait for the heartbeat to age
        except PermissionError:
            pass
    return age_s < STALE_S


def _take_over_if_stale(lp: Path) -> bool:
    """Remove an abandoned lease; True if `lp` is gone now. Renamed away first (atomic: of two processes that both
    judged it stale, one moves it), then checked to be the one judged stale, so a fresh lease is never removed."""
    seen = _read(lp)
    if _lease_alive(lp):
        return False
    grave = lp.with_name(f"{lp.name}.stale.{uuid.uuid4().hex[:8]}")
    try:
        os.rename(lp, grave)
    except FileNotFoundError:
        return True
    if _read(grave).get("token") != seen.get("token"):  # a new lease appeared between the check and the rename
        try:
            os.link(grave, lp)  # put it back, unless yet another lease exists meanwhile
        except FileExistsError:
            pass
        _unlink(grave)
        return False
    logger.warning("lock %s: took over an abandoned lease (host %s, pid %s)", lp, seen.get("host"), seen.get("pid"))
    _unlink(grave)
    return True


def is_held(path: str | os.PathLike) -> bool:
    """Whether another process holds the lock, without creating or writing anything (works on a read-only run
    directory: `amela status`)."""
    path = Path(path)
    if _lease_alive(lease_path(path)):
        return True
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False  # no lock file: never locked
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # flock needs no write access to the file
    except BlockingIOError:
        return True
    except OSError:
        return False  # no flock here: the lease (checked above) is the whole truth
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
    return False
