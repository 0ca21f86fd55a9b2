#!/usr/bin/env bash
# Stop the cluster started by start.sh: cancel every job first (so sacct records them), then the daemons by pid file.
#   stop.sh                 cancel jobs, stop slurmd, slurmctld, slurmdbd, MariaDB and the munged we started
#   stop.sh --daemons-only  stop only the three SLURM daemons, leave jobs alone (start.sh uses it on a new config)
#   stop.sh --purge         stop everything, then delete the state directory and the configuration we wrote
# Same environment settings as start.sh (AMELA_SLURM_DIR, AMELA_SLURM_CONF_DIR).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=common.sh
source "$HERE/common.sh"

mode=${1:-all}
case "$mode" in all | --daemons-only | --purge) ;; *) die "unknown option $mode (use --daemons-only or --purge)" ;; esac
[[ $(id -u) -eq 0 ]] || die "must run as root"
[[ -d "$STATE" ]] || exit 0  # never started (or purged)
take_lock

# stop_pids PIDFILE COMM [PIDFILE COMM...]: SIGTERM to each live one at once, wait up to 20 s, then SIGKILL.
# A pid file counts only if it names a live process of that program (guards against pid reuse).
stop_pids() {
  local pids=() names=() t0 pid
  t0=$(date +%s%N)
  while (($#)); do
    if alive "$1" "$2"; then
      pid=$(cat "$1")
      kill -TERM "$pid" 2>/dev/null || true
      pids+=("$pid") names+=("$2")
    fi
    rm -f "$1"
    shift 2
  done
  ((${#pids[@]})) || return 0
  for _ in $(seq 100); do
    kill -0 "${pids[@]}" 2>/dev/null || break  # true while any is alive
    sleep 0.1
  done
  for pid in "${pids[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then
      log "pid $pid ignored SIGTERM for 10 s: killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
  log "stopped ${names[*]} ($((($(date +%s%N) - t0) / 1000000)) ms)"
}

cancel_all_jobs() {
  alive "$STATE/run/slurmctld.pid" slurmctld || return 0
  local ids
  ids=$(squeue -h -o %A 2>/dev/null | sort -u | tr '\n' ' ')
  [[ -n "${ids// /}" ]] || return 0
  log "cancelling jobs: $ids"
  # shellcheck disable=SC2086
  scancel $ids 2>/dev/null || true
  # Let them end (KillWait=5) so that slurmctld sends the final states to slurmdbd before it stops.
  for _ in $(seq 75); do [[ -z "$(squeue -h -o %A 2>/dev/null)" ]] && break; sleep 0.2; done
  sleep 1
}

[[ "$mode" == --daemons-only ]] || cancel_all_jobs
# slurmctld before slurmdbd, so that it hands over its last job records.
stop_pids "$STATE/run/slurmd.pid" slurmd "$STATE/run/slurmctld.pid" slurmctld
stop_pids "$STATE/run/slurmdbd.pid" slurmdbd
[[ "$mode" == --daemons-only ]] && exit 0

munge_pidfile=/nonexistent
# Never stop a munged that was running before start.sh.
[[ -f "$STATE/run/munged.ours" ]] && munge_pidfile=$(cat "$STATE/run/munged.ours")
stop_pids "$STATE/mysql/run/mysqld.pid" mariadbd "$munge_pidfile" munged
rm -f "$STATE/run/munged.ours"

if [[ "$mode" == --purge ]]; then
  for f in slurm.conf slurmdbd.conf cgroup.conf; do
    if [[ -f "$CONF_DIR/$f" ]] && grep -q "$MARKER" "$CONF_DIR/$f"; then rm -f "$CONF_DIR/$f"; fi
  done
  if grep -q "# added by amela scripts/slurm-local" /etc/hosts; then
    hosts=$(grep -v "# added by amela scripts/slurm-local" /etc/hosts)
    printf '%s\n' "$hosts" >/etc/hosts  # in place: /etc/hosts may be a bind mount
  fi
  rm -rf "$STATE"
  log "removed $STATE and the configuration in $CONF_DIR"
fi
