# Shared by start.sh and stop.sh (sourced, not run).
STATE=${AMELA_SLURM_DIR:-/var/lib/amela-slurm}
CONF_DIR=${AMELA_SLURM_CONF_DIR:-/etc/slurm}
CLUSTER=${AMELA_SLURM_CLUSTER:-amela}
PARTITION=${AMELA_SLURM_PARTITION:-debug}
MAX_ARRAY_SIZE=${AMELA_SLURM_MAX_ARRAY_SIZE:-1001}
CTLD_PORT=${AMELA_SLURM_CTLD_PORT:-6817}
SLURMD_PORT=${AMELA_SLURM_SLURMD_PORT:-6818}
DBD_PORT=${AMELA_SLURM_DBD_PORT:-6819}
MARKER="managed by amela scripts/slurm-local"
# Client commands (sinfo, sbatch, sacctmgr) and the daemons read the configuration from here.
export SLURM_CONF="$CONF_DIR/slurm.conf"

log() { echo "slurm-local: $*" >&2; }
die() { log "error: $*"; exit 1; }
die_log() {  # die_log MESSAGE LOGFILE: say what failed and show the end of the log that explains it
  log "error: $1"
  if [[ -s "$2" ]]; then
    log "last lines of $2:"
    tail -n 30 "$2" | sed 's/^/    /' >&2
  fi
  exit 1
}

# alive PIDFILE COMM: the pid file names a live process with that command name (guards against pid reuse).
alive() {
  local pid
  pid=$(cat "$1" 2>/dev/null) || return 1
  [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null && [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == "$2" ]]
}

# wait_for SECONDS WHAT COMMAND...: poll COMMAND every 0.2 s until it succeeds.
wait_for() {
  local limit_s=$1 what=$2
  local deadline=$((SECONDS + limit_s))
  shift 2
  until "$@"; do
    ((SECONDS < deadline)) || { log "timed out after $limit_s s waiting for $what"; return 1; }
    sleep 0.2
  done
}

# Serialise start.sh and stop.sh (several test sessions may call them at once). start.sh runs stop.sh while holding
# the lock and tells it so through AMELA_SLURM_LOCKED.
take_lock() {
  [[ "${AMELA_SLURM_LOCKED:-0}" == 1 ]] && return 0
  install -d -m 0755 "$STATE"
  exec 9>"$STATE/.lock"
  flock -w 600 9 || die "could not lock $STATE/.lock within 600 s"
  export AMELA_SLURM_LOCKED=1
}
