"""A large array on the local SLURM cluster: scheduler overhead per task, and `amela status` while it runs.

Submits `amela run` of a no-op stage (bench/scale.py's NoopStage: the runner's own cost, nothing else) as an array of
--tasks shards, throttled to the cluster's CPUs (--array-parallelism: what the node can run at once, one CPU per task),
polls `amela status RUN_DIR` every --poll-s seconds (timing each call) until the merge job ended, then reads every
task's start, end and elapsed time from sacct. Prints:

  - submission: wall seconds of `amela run --backend sbatch` (prepare + sbatch of the arrays and the merge job)
  - task elapsed: what one task costs (interpreter start, imports, the shard, SLURM's prolog/epilog), mean and max
  - scheduler overhead per task: the slot time not spent inside a task, (makespan x slots - sum of elapsed) / tasks:
    the dispatch latency between one task ending and the next starting on its CPU
  - status: median and max seconds of `amela status` during the run, and once at the end

Last line: `slurm_scale: tasks=N parallelism=P makespan_s=.. task_elapsed_s=.. sched_overhead_s_per_task=..
status_s_median=.. status_s_max=..`. The cluster must be running (scripts/slurm-local/start.sh, or the tests'
fixture with AMELA_SLURM_KEEP=1). On a 2-core machine every task costs about 2 s of CPU, so 1,000 tasks take
15-20 minutes; use --tasks 200 for a quick figure. Usage:

    SLURM_CONF=/etc/slurm/slurm.conf .venv/bin/python bench/slurm_scale.py [--tasks 1000] [--records-per-task 10]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
STAGE = "scale:NoopStage"


def sh(*args: str, timeout_s: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=timeout_s)


def amela(*args: str) -> tuple[float, subprocess.CompletedProcess]:
    t = time.monotonic()
    proc = sh(sys.executable, "-m", "amela", *args, timeout_s=600)
    return time.monotonic() - t, proc


def cluster_cpus() -> int:
    out = sh("sinfo", "-h", "-o", "%C").stdout.split()  # allocated/idle/other/total
    return int(out[0].split("/")[3]) if out else 1


def sacct_tasks(job_id: str) -> list[dict]:
    rows = sh("sacct", "-n", "-X", "-P", "-j", job_id, "-o", "JobID,State,Start,End,ElapsedRaw").stdout.splitlines()
    out = []
    for row in rows:
        job, state, start, end, elapsed = row.split("|")
        if "_" in job and "[" not in job and state == "COMPLETED":
            out.append({"task": job, "start": datetime.fromisoformat(start).timestamp(),
                        "end": datetime.fromisoformat(end).timestamp(), "elapsed_s": int(elapsed)})
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tasks", type=int, default=1000, help="array tasks (shards) (default: 1000)")
    ap.add_argument("--records-per-task", type=int, default=10)
    ap.add_argument("--parallelism", type=int, default=None, help="tasks at once (default: the cluster's CPUs)")
    ap.add_argument("--poll-s", type=float, default=5.0, help="seconds between two `amela status` calls")
    ap.add_argument("--keep", help="run directory to keep (default: a temporary one)")
    args = ap.parse_args()
    if not sh("scontrol", "ping").stdout.count("UP"):
        print("slurm_scale: no SLURM controller answers (set SLURM_CONF, start scripts/slurm-local/start.sh)")
        return 2
    # Tasks inherit this environment: this checkout, and the bench folder for the stage.
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [ROOT, HERE, os.environ.get("PYTHONPATH")]))
    os.environ["AMELA_PROGRESS_INTERVAL_S"] = "3600"
    parallelism = args.parallelism or cluster_cpus()
    work = args.keep or tempfile.mkdtemp(prefix="amela-slurm-scale-")
    os.makedirs(work, exist_ok=True)
    manifest, run_dir = os.path.join(work, "m.jsonl"), os.path.join(work, "run")
    n = args.tasks * args.records_per_task
    with open(manifest, "w") as fh:
        for i in range(n):
            fh.write(json.dumps({"audio_filepath": f"/corpus/r{i:08d}.flac", "duration": 1 + i % 13 * 0.5}) + "\n")

    submit_s, proc = amela("run", STAGE, manifest, "-o", run_dir, "--shards", str(args.tasks), "--workers", "0",
                           "--backend", "sbatch", "--gpus-per-task", "0", "--cpus-per-task", "1", "--mem", "400M",
                           "--array-parallelism", str(parallelism), "--signal-delay-s", "0")
    if proc.returncode != 0:
        print(proc.stdout, proc.stderr)
        return 1
    arrays = re.findall(r"submitted array job (\d+)", proc.stdout)
    merge = re.search(r"submitted merge job (\d+)", proc.stdout).group(1)
    print(f"submitted {args.tasks} task(s) in {len(arrays)} array(s) ({', '.join(arrays)}), merge job {merge}, "
          f"at most {parallelism} at once: {submit_s:.2f} s")
    submitted_at = time.time()
    status_s: list[float] = []
    while True:
        dt, st = amela("status", run_dir)
        status_s.append(dt)
        done = re.search(r"done\s+(\d+)", st.stdout)
        print(f"  t={time.time() - submitted_at:6.0f} s  status {dt:5.2f} s  done {done.group(1) if done else '?'}"
              f"/{args.tasks}", flush=True)
        state = sh("sacct", "-n", "-X", "-P", "-j", merge, "-o", "State").stdout.strip()
        if state and state.split()[0] in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"):
            break
        time.sleep(args.poll_s)
    final_s, st = amela("status", run_dir)
    tasks = [t for a in arrays for t in sacct_tasks(a)]
    if len(tasks) != args.tasks:
        print(f"only {len(tasks)} of {args.tasks} tasks completed; merge job: {state}\n{st.stdout}")
        return 1
    makespan_s = max(t["end"] for t in tasks) - min(t["start"] for t in tasks)
    elapsed = [t["elapsed_s"] for t in tasks]
    overhead_s = (makespan_s * parallelism - sum(elapsed)) / len(tasks)
    first_start_s = min(t["start"] for t in tasks) - submitted_at
    print(f"tasks: {len(tasks)}, makespan {makespan_s:.0f} s ({makespan_s / len(tasks):.2f} s per task with "
          f"{parallelism} slots); first task started {first_start_s:.1f} s after submission")
    print(f"task elapsed: mean {statistics.mean(elapsed):.2f} s, max {max(elapsed)} s (sacct, whole seconds)")
    print(f"scheduler overhead per task: {overhead_s:.2f} s of slot time between tasks (with sacct's whole seconds, "
          "sub-second tasks count as 0 s: then this is all the slot time a task costs)")
    print(f"status during the run: {len(status_s)} call(s), median {statistics.median(status_s):.2f} s, max "
          f"{max(status_s):.2f} s; after: {final_s:.2f} s; merge job {state}")
    print(f"slurm_scale: tasks={len(tasks)} parallelism={parallelism} makespan_s={makespan_s:.0f} "
          f"task_elapsed_s={statistics.mean(elapsed):.2f} sched_overhead_s_per_task={overhead_s:.2f} "
          f"status_s_median={statistics.median(status_s):.2f} status_s_max={max(status_s):.2f}")
    if not args.keep:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
