"""A real single-node SLURM cluster for the tests: the session fixture `slurm_cluster`.

It runs scripts/slurm-local/start.sh (installs the packages with apt-get if needed, starts munge, MariaDB, slurmdbd,
slurmctld and slurmd on loopback), yields a `SlurmCluster` with the facts read back from the live cluster and helpers
to submit and wait, and runs stop.sh at the end. It skips, with the reason, only where the cluster cannot run: not
root, or SLURM missing and no apt-get. Sessions running side by side share the cluster; the last one out stops it
if a session started it. A cluster started by hand, or with AMELA_SLURM_KEEP=1, is left running (the next session
then starts in well under a second).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
SCRIPTS = REPO / "scripts" / "slurm-local"
STATE_DIR = Path(os.environ.get("AMELA_SLURM_DIR", "/var/lib/amela-slurm"))
CONF_FILE = Path(os.environ.get("AMELA_SLURM_CONF_DIR", "/etc/slurm")) / "slurm.conf"
START_TIMEOUT_S = 600  # a cold start installs packages (about a minute on a good mirror)

# sacct/squeue states after which a job (or array task) never runs again.
FINAL_STATES = frozenset(
    {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "PREEMPTED", "OUT_OF_MEMORY", "BOOT_FAIL",
     "DEADLINE", "REVOKED"}
)


class SlurmCommandError(RuntimeError):
    pass


@dataclass
class SlurmCluster:
    """Facts about the running cluster (read from slurmctld, not from our templates) and helpers."""

    CommandError = SlurmCommandError  # raised by run()/sbatch(); here so tests need not import conftest

    partition: str
    node: str
    cpus: int
    memory_mb: int
    max_array_size: int
    cluster_name: str
    state_dir: Path
    conf_file: Path
    env: dict = field(repr=False)

    # ------------------------------------------------------------------ commands
    def run(self, *args: str, check: bool = True, timeout_s: float = 30) -> subprocess.CompletedProcess:
        """Run a SLURM client command with the cluster's configuration; raises with its stderr when check."""
        proc = subprocess.run(list(args), env=self.env, capture_output=True, text=True, timeout=timeout_s)
        if check and proc.returncode != 0:
            raise SlurmCommandError(f"{' '.join(args)} failed (rc={proc.returncode}): {proc.stderr.strip()}")
        return proc

    def sbatch(self, *args: str, script: str | None = None, wrap: str | None = None) -> str:
        """Submit a job; returns its id. `script` is the text of a batch script (given on stdin)."""
        cmd = ["sbatch", "--parsable", *args]
        if wrap is not None:
            cmd += ["--wrap", wrap]
        proc = subprocess.run(cmd, env=self.env, input=script, capture_output=True, text=True, timeout=30)
        if proc.returncode != 0:
            raise SlurmCommandError(f"sbatch failed (rc={proc.returncode}): {proc.stderr.strip()}")
        return proc.stdout.strip().split(";")[0]  # "<id>" or "<id>;<cluster>"

    # ------------------------------------------------------------------ states
    def squeue_states(self, job_id: str) -> dict[str, str]:
        """slurmctld's view, without sacct's lag: {"123" or "123_4": state}, pending array tasks one by one;
        {} once slurmctld forgot the job (MinJobAge=3600 s after it ended)."""
        proc = self.run("squeue", "-h", "-r", "-j", str(job_id), "--states=all", "-o", "%i|%T", check=False)
        states = {}
        for line in proc.stdout.splitlines():
            job, _, state = line.partition("|")
            states[job.strip()] = state.strip()
        return states

    def sacct_states(self, job_id: str, duplicates: bool = False) -> dict[str, tuple[str, str]]:
        """The accounting view: {"123" or "123_4": (state, exit code "rc:signal")}, one row per job/task.

        "CANCELLED by 0" is reported as "CANCELLED". With duplicates=True, earlier runs of a requeued job are kept
        as extra entries ("123#0", "123#1", ... in the order sacct lists them)."""
        args = ["sacct", "-n", "-X", "-P", "-j", str(job_id), "-o", "JobID,State,ExitCode"]
        if duplicates:
            args.insert(1, "--duplicates")
        rows = {}
        for i, line in enumerate(self.run(*args).stdout.splitlines()):
            job, state, exit_code = line.split("|")
            key = f"{job}#{i}" if duplicates else job
            rows[key] = (state.split()[0] if state else "", exit_code)
        return rows

    def wait_for_state(self, job_id: str, states: set[str], timeout_s: float = 60) -> str:
        """Poll squeue until the job (every task of it) is in one of `states`; returns that state."""
        deadline = time.monotonic() + timeout_s
        while True:
            current = set(self.squeue_states(job_id).values())
            if len(current) == 1 and current <= states:
                return current.pop()
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} not in {sorted(states)} after {timeout_s} s: {current}\n"
                                   + self.diagnostics(job_id))
            time.sleep(0.3)

    def wait_for_job(self, job_id: str, timeout_s: float = 60) -> dict[str, str]:
        """Wait until the job (all tasks of an array) reached a final state in sacct; returns {job/task id: state}.

        slurmctld is polled first (no lag), then sacct until it agrees (it lags squeue by a few seconds)."""
        deadline = time.monotonic() + timeout_s
        while True:
            queued = self.squeue_states(job_id)
            if all(state in FINAL_STATES for state in queued.values()):
                rows = self.sacct_states(job_id)
                # An array not yet expanded shows as "123_[0-3%2]"; pending tasks are not final either.
                if rows and all(s in FINAL_STATES and "[" not in j for j, (s, _) in rows.items()) and (
                    not queued or len(rows) >= len(queued)
                ):
                    return {j: s for j, (s, _) in rows.items()}
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} not finished after {timeout_s} s\n" + self.diagnostics(job_id))
            time.sleep(0.5)

    # ------------------------------------------------------------------ debugging
    def log_tail(self, daemon: str, lines: int = 20) -> str:
        """The last lines of a daemon's log: slurmctld, slurmd, slurmdbd, mariadb, munged."""
        path = self.state_dir / "log" / f"{daemon}.log"
        try:
            return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
        except OSError as exc:
            return f"({path}: {exc})"

    def diagnostics(self, job_id: str | None = None) -> str:
        parts = []
        if job_id is not None:
            parts.append(self.run("scontrol", "show", "job", str(job_id), check=False).stdout)
            parts.append(self.run("sacct", "-j", str(job_id), "--duplicates", "-o",
                                  "JobID,State,ExitCode,Reason,Start,End", check=False).stdout)
        parts.append(self.run("sinfo", "-N", "-l", check=False).stdout)
        for daemon in ("slurmctld", "slurmd"):
            parts.append(f"--- {daemon}.log\n{self.log_tail(daemon)}")
        return "\n".join(parts)


# ---------------------------------------------------------------------- fixture
def _why_cannot_run() -> str | None:
    if not sys.platform.startswith("linux"):
        return "the local SLURM cluster needs Linux"
    if os.geteuid() != 0:
        return "the local SLURM cluster needs root (it installs packages and starts daemons); CI runs as root"
    have_slurm = all(shutil.which(p) for p in ("slurmctld", "slurmd", "slurmdbd", "sbatch", "munged", "mariadbd"))
    if not have_slurm and not shutil.which("apt-get"):
        return "SLURM is not installed and there is no apt-get to install it (scripts/slurm-local needs Debian)"
    return None


def _script(name: str, *args: str, timeout_s: float) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPTS / name), *args], capture_output=True, text=True, timeout=timeout_s)


def _slurm_env() -> dict:
    env = dict(os.environ)
    env["SLURM_CONF"] = str(CONF_FILE)
    # Jobs inherit the submitter's environment (--export=ALL); a SLURM_* left over from an enclosing allocation
    # would leak into them and confuse sbatch itself.
    for key in [k for k in env if k.startswith(("SLURM_", "SBATCH_", "SALLOC_", "SRUN_")) and k != "SLURM_CONF"]:
        del env[key]
    return env


def _read_facts(env: dict) -> SlurmCluster:
    def out(*args: str) -> str:
        return subprocess.run(list(args), env=env, capture_output=True, text=True, check=True, timeout=30).stdout

    config = {}
    for line in out("scontrol", "show", "config").splitlines():
        key, sep, value = line.partition("=")
        if sep:
            config[key.strip()] = value.strip()
    partition = next(p.rstrip("*") for p in out("sinfo", "-h", "-o", "%P").split() if p.endswith("*"))
    node, cpus, memory = out("sinfo", "-h", "-N", "-p", partition, "-o", "%N %c %m").split()[:3]
    return SlurmCluster(
        partition=partition, node=node, cpus=int(cpus), memory_mb=int(memory),
        max_array_size=int(config["MaxArraySize"]), cluster_name=config["ClusterName"],
        state_dir=STATE_DIR, conf_file=CONF_FILE, env=env,
    )


@contextlib.contextmanager
def _sessions_lock():
    """Held while a session registers and starts, or unregisters and maybe stops, the cluster."""
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    with open(STATE_DIR / ".sessions.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield STATE_DIR / "sessions"


def _live_sessions(sessions: Path) -> list[int]:
    live = []
    for entry in sessions.glob("*"):
        if entry.name.isdigit() and Path(f"/proc/{entry.name}").exists():
            live.append(int(entry.name))
        else:
            entry.unlink(missing_ok=True)  # a session that died without tearing down
    return live


@pytest.fixture(scope="session")
def slurm_cluster():
    """The running cluster. Several pytest sessions may share it at once (developers run test files side by side):
    each registers itself under STATE_DIR/sessions, and the last one out stops the cluster, but only if a session
    started it (a cluster started by hand, or with AMELA_SLURM_KEEP=1, is left running)."""
    reason = _why_cannot_run()
    if reason:
        pytest.skip(reason)
    env = _slurm_env()
    with _sessions_lock() as sessions:
        sessions.mkdir(exist_ok=True)
        # (Without a slurm.conf, scontrol would retry for 60 s.)
        was_running = CONF_FILE.exists() and shutil.which("scontrol") is not None and "is UP" in subprocess.run(
            ["scontrol", "ping"], env=env, capture_output=True, text=True, timeout=30).stdout
        started = time.monotonic()
        proc = _script("start.sh", timeout_s=START_TIMEOUT_S)
        if proc.returncode != 0:
            pytest.fail(f"scripts/slurm-local/start.sh failed (rc={proc.returncode}):\n{proc.stdout}{proc.stderr}",
                        pytrace=False)
        if not was_running and os.environ.get("AMELA_SLURM_KEEP") != "1":
            (STATE_DIR / "run" / "started-by-pytest").touch()
        (sessions / str(os.getpid())).touch()
    # Shown with `pytest -s`: how long the start took.
    print(f"\nslurm-local ready in {time.monotonic() - started:.1f} s: {proc.stderr.strip().splitlines()[-1]}")
    try:
        yield _read_facts(env)
    finally:
        _release(sessions)


def _release(sessions: Path) -> None:
    with _sessions_lock():
        (sessions / str(os.getpid())).unlink(missing_ok=True)
        marker = STATE_DIR / "run" / "started-by-pytest"
        if _live_sessions(sessions) or not marker.exists() or os.environ.get("AMELA_SLURM_KEEP") == "1":
            return
        stop = _script("stop.sh", timeout_s=120)
        marker.unlink(missing_ok=True)
        if stop.returncode != 0:
            print(f"scripts/slurm-local/stop.sh failed:\n{stop.stdout}{stop.stderr}", file=sys.stderr)
