"""Process-level set-up: CPU counts, thread limits, faulthandler, logging, parent-death signal.

Workers are started with `spawn` (never `fork` after torch or a native library loaded threads), and each one limits
its numeric libraries' threads to its share of the cores *before* importing them.
"""
from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys

THREAD_ENV_VARS = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)
LOG_LEVEL_ENV = "AMELA_LOG_LEVEL"
CACHE_ENV = "AMELA_CACHE"  # the model cache of every stage with models (each keeps its own subfolder)
logger = logging.getLogger("amela")


def available_cpus() -> int:
    """CPUs this process may use: SLURM's allocation when inside a task, else the affinity mask."""
    slurm = os.environ.get("SLURM_CPUS_PER_TASK")
    if slurm and slurm.isdigit() and int(slurm) > 0:
        return int(slurm)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        return os.cpu_count() or 1


def threads_per_worker(workers: int, cpus: int | None = None) -> int:
    return max(1, (cpus or available_cpus()) // max(1, workers))


def thread_env(threads: int) -> dict[str, str]:
    return {name: str(threads) for name in THREAD_ENV_VARS}


def limit_threads(threads: int) -> None:
    """Set thread limits; effective for libraries imported afterwards (and torch, if already imported)."""
    os.environ.update(thread_env(threads))
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)


def die_with_parent() -> None:
    """Linux: have the kernel SIGKILL this worker if its parent dies, so a killed runner leaves no orphans."""
    if sys.platform != "linux":
        return
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:
        pass


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is at the time of each message: notebooks and test runners replace it, and a
    handler holding the old object would write where nobody reads."""

    def __init__(self):
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value):
        pass


def setup_logging(level: str | None = None) -> None:
    """The `amela` logger to stderr; AMELA_LOG_LEVEL (DEBUG, INFO, WARNING) sets the level."""
    level = (level or os.environ.get(LOG_LEVEL_ENV) or "INFO").upper()
    handler = next((h for h in logger.handlers if getattr(h, "_amela", False)), None)
    if handler is None:
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
        handler._amela = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    handler.setLevel(level)
    # The logger passes everything: the terminal shows `level`, shard log files keep DEBUG (failed items' tracebacks).
    logger.setLevel(logging.DEBUG)
    logger.propagate = False


def signal_name(exitcode: int | None) -> str | None:
    """'SIGSEGV' for a process killed by a signal (negative exit code), else None."""
    if exitcode is None or exitcode >= 0:
        return None
    try:
        return signal.Signals(-exitcode).name
    except ValueError:
        return f"signal {-exitcode}"


def peak_rss_mb() -> float:
    """This process's peak resident memory. Linux: VmHWM, which starts afresh at exec; ru_maxrss would report the
    parent's size at fork when that was larger."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # KiB on Linux, bytes on macOS
