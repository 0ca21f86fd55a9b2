#!/usr/bin/env bash
# Start a single-node SLURM cluster on loopback (munge, MariaDB, slurmdbd, slurmctld, slurmd) for AMELA's tests.
# Takes a fresh Debian 12 machine, as root, to a running cluster; idempotent (already running => exits 0 at once).
# No systemd is assumed: every daemon is started directly, its state and log kept under $AMELA_SLURM_DIR.
# Settings (environment):
#   AMELA_SLURM_DIR        state, logs, pid files            (default /var/lib/amela-slurm)
#   AMELA_SLURM_CONF_DIR   where slurm.conf/slurmdbd.conf go (default /etc/slurm, where sbatch looks;
#                          elsewhere, clients need SLURM_CONF=$AMELA_SLURM_CONF_DIR/slurm.conf)
#   AMELA_SLURM_CLUSTER    cluster name                      (default amela)
#   AMELA_SLURM_PARTITION  partition name                    (default debug)
#   AMELA_SLURM_MAX_ARRAY_SIZE                               (default 1001: array indices 0..1000)
#   AMELA_SLURM_CPUS       advertise this many CPUs instead of the real count (more concurrent tasks on a small box)
#   AMELA_SLURM_SKIP_APT=1 never call apt-get (fail if a package is missing)
set -euo pipefail
umask 022

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=common.sh
source "$HERE/common.sh"

[[ $(id -u) -eq 0 ]] || die "must run as root (it installs packages and starts system daemons)"

t_start=$(date +%s.%N)
elapsed() { awk -v a="$t_start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

# ---------------------------------------------------------------------------------------------- packages
PACKAGES=(munge slurmctld slurmd slurm-client slurmdbd mariadb-server)
install_packages() {
  local missing=() p
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  [[ "${AMELA_SLURM_SKIP_APT:-0}" != 1 ]] || die "missing packages and AMELA_SLURM_SKIP_APT=1: ${missing[*]}"
  command -v apt-get >/dev/null || die "missing packages and no apt-get: ${missing[*]}"
  log "installing ${missing[*]}"
  # Package scripts must not start the daemons (no init system here); we start them ourselves.
  local own_policy=0
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && own_policy=1
  fi
  local apt_log="$STATE/log/apt.log" rc=0
  export DEBIAN_FRONTEND=noninteractive
  apt_install() { apt-get install -y -q --no-install-recommends "${missing[@]}" >>"$apt_log" 2>&1; }
  # Update the lists only when needed: none yet, or the install fails on stale ones.
  if ! apt-cache show slurmctld >/dev/null 2>&1; then apt-get update -q >>"$apt_log" 2>&1 || true; fi
  apt_install || { apt-get update -q >>"$apt_log" 2>&1 && apt_install; } || rc=$?
  ((own_policy)) && rm -f /usr/sbin/policy-rc.d
  ((rc == 0)) || die_log "apt-get install failed (rc=$rc)" "$apt_log"
  log "packages installed ($(elapsed) s)"
}

# ---------------------------------------------------------------------------------------------- host name
# With NoInAddrAny every daemon binds to the first address `hostname` resolves to, whatever the configuration
# says; so that address must be a loopback one. If it is not, put '127.0.1.1 HOST' first in /etc/hosts (Debian's
# own convention; existing lines are kept, stop.sh --purge removes ours) and use that address throughout.
HOSTS_MARK="# added by amela scripts/slurm-local"
first_addr() { getent ahostsv4 "$(hostname)" 2>/dev/null | awk 'NR == 1 { print $1 }'; }
resolve_loopback() {
  ADDR=$(first_addr)
  if [[ "$ADDR" != 127.* ]]; then
    log "hostname $(hostname) resolves to '${ADDR:-nothing}', not loopback: adding 127.0.1.1 to /etc/hosts"
    local hosts
    hosts=$(cat /etc/hosts)
    # Rewrite in place (not rename): /etc/hosts is often a bind mount in containers.
    printf '127.0.1.1\t%s %s\t%s\n%s\n' "$(hostname)" "$(hostname -s)" "$HOSTS_MARK" "$hosts" >/etc/hosts
    ADDR=$(first_addr)
    [[ "$ADDR" == 127.* ]] || die "hostname $(hostname) still resolves to '${ADDR:-nothing}', check /etc/nsswitch.conf"
  fi
}

# ---------------------------------------------------------------------------------------------- munge
start_munge() {
  if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then return 0; fi  # a munged (ours or the system's) answers
  install -d -o munge -g munge -m 0755 /run/munge
  install -d -o munge -g munge -m 0700 /var/lib/munge /var/log/munge
  if [[ ! -s /etc/munge/munge.key ]]; then
    install -d -o munge -g munge -m 0700 /etc/munge
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    chown munge:munge /etc/munge/munge.key && chmod 0400 /etc/munge/munge.key
  fi
  local mlog="$STATE/log/munged.log"
  touch "$mlog" && chown munge:munge "$mlog"
  runuser -u munge -- munged --log-file="$mlog" 9>&- || die_log "munged failed to start" "$mlog"
  echo "/run/munge/munged.pid" >"$STATE/run/munged.ours"  # stop.sh stops only a munged it started
  wait_for 10 "munge credentials" bash -c 'munge -n | unmunge >/dev/null' || die_log "munged does not answer" "$mlog"
}

# ---------------------------------------------------------------------------------------------- MariaDB
DB_DIR="$STATE/mysql"
DB_SOCKET="$DB_DIR/run/mysqld.sock"
start_mariadb() {
  if alive "$DB_DIR/run/mysqld.pid" mariadbd && db_ping; then return 0; fi
  # pid, socket and log in a directory the mysql user owns; no TCP at all (private socket only).
  install -d -o mysql -g mysql -m 0750 "$DB_DIR" "$DB_DIR/data" "$DB_DIR/run"
  if [[ ! -d "$DB_DIR/data/mysql" ]]; then
    mariadb-install-db --no-defaults --user=mysql --datadir="$DB_DIR/data" --skip-test-db \
      --auth-root-authentication-method=socket >"$STATE/log/mariadb-install.log" 2>&1 ||
      die_log "mariadb-install-db failed" "$STATE/log/mariadb-install.log"
  fi
  setsid mariadbd --no-defaults --user=mysql --datadir="$DB_DIR/data" --socket="$DB_SOCKET" \
    --pid-file="$DB_DIR/run/mysqld.pid" --log-error="$DB_DIR/run/mariadb.log" --skip-networking \
    --innodb-buffer-pool-size=256M --innodb-lock-wait-timeout=900 </dev/null >/dev/null 2>&1 9>&- &
  wait_for 60 "MariaDB" db_ping || die_log "MariaDB did not start" "$DB_DIR/run/mariadb.log"
  ln -sf "$DB_DIR/run/mariadb.log" "$STATE/log/mariadb.log"
}
db_ping() { mariadb-admin --no-defaults --socket="$DB_SOCKET" -u root ping >/dev/null 2>&1; }

setup_database() {
  mariadb --no-defaults --socket="$DB_SOCKET" -u root <<SQL || die "could not create the accounting database"
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$DB_PASS';
ALTER USER 'slurm'@'localhost' IDENTIFIED BY '$DB_PASS';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
SQL
}

# ---------------------------------------------------------------------------------------------- config
# The node line comes from `slurmd -C` (what this machine really has), memory at 95% so jobs fit.
node_line() {
  local line mem cpus
  line=$(slurmd -C 2>/dev/null | grep -m1 '^NodeName=') || die "slurmd -C printed no node line"
  mem=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$line")
  line=$(sed "s/RealMemory=[0-9]*/RealMemory=$((mem * 95 / 100))/" <<<"$line")
  if [[ -n "${AMELA_SLURM_CPUS:-}" ]]; then
    cpus=$AMELA_SLURM_CPUS
    line=$(sed -E "s/CPUs=[0-9]+/CPUs=$cpus/; s/ (Boards|SocketsPerBoard|CoresPerSocket|ThreadsPerCore)=[0-9]+//g" <<<"$line")
    line="$line Boards=1 SocketsPerBoard=1 CoresPerSocket=$cpus ThreadsPerCore=1"
  fi
  echo "$line NodeAddr=$ADDR State=UNKNOWN"
}

render() {  # render TEMPLATE > OUT, replacing @KEY@ with the values below
  sed -e "s|@STATE@|$STATE|g" -e "s|@CLUSTER@|$CLUSTER|g" -e "s|@PARTITION@|$PARTITION|g" \
    -e "s|@HOST@|$(hostname -s)|g" -e "s|@ADDR@|$ADDR|g" -e "s|@NODE_LINE@|$NODE_LINE|g" -e "s|@MAX_ARRAY_SIZE@|$MAX_ARRAY_SIZE|g" \
    -e "s|@SLURMD_PARAMETERS@|$SLURMD_PARAMETERS|g" -e "s|@DB_PASS@|${DB_PASS:-}|g" \
    -e "s|@CTLD_PORT@|$CTLD_PORT|g" -e "s|@SLURMD_PORT@|$SLURMD_PORT|g" -e "s|@DBD_PORT@|$DBD_PORT|g" \
    -e "s|@MARKER@|$MARKER|g" "$1"
}

# Install a rendered file unless an unrelated one is already there; returns 1 (changed) or 0 (unchanged).
CHANGED=0
install_conf() {  # install_conf RENDERED DEST MODE
  local src=$1 dest=$2 mode=$3
  if [[ -e "$dest" ]] && ! grep -q "$MARKER" "$dest"; then
    die "$dest exists and was not written by scripts/slurm-local; set AMELA_SLURM_CONF_DIR to another directory"
  fi
  if [[ -e "$dest" ]] && cmp -s "$src" "$dest"; then return 0; fi
  install -m "$mode" "$src" "$dest.tmp" && mv -f "$dest.tmp" "$dest"
  CHANGED=1
}

write_configs() {
  NODE_LINE=$(node_line)
  SLURMD_PARAMETERS=""
  [[ -n "${AMELA_SLURM_CPUS:-}" ]] && SLURMD_PARAMETERS="SlurmdParameters=config_overrides"
  install -d -m 0755 "$CONF_DIR"
  local tmp
  tmp=$(mktemp -d)
  render "$HERE/slurm.conf.in" >"$tmp/slurm.conf"
  render "$HERE/slurmdbd.conf.in" >"$tmp/slurmdbd.conf"
  install_conf "$tmp/slurm.conf" "$CONF_DIR/slurm.conf" 0644
  install_conf "$tmp/slurmdbd.conf" "$CONF_DIR/slurmdbd.conf" 0600  # holds the DB password; owner = SlurmUser
  rm -rf "$tmp"
}

# ---------------------------------------------------------------------------------------------- slurm daemons
start_slurmdbd() {
  alive "$STATE/run/slurmdbd.pid" slurmdbd && return 0
  # slurmdbd's MariaDB client finds the private socket through MYSQL_UNIX_PORT (StorageHost=localhost).
  MYSQL_UNIX_PORT="$DB_SOCKET" slurmdbd 9>&- || die_log "slurmdbd failed to start" "$STATE/log/slurmdbd.log"
  wait_for 30 "slurmdbd" bash -c "sacctmgr -n list cluster >/dev/null 2>&1" ||
    die_log "slurmdbd does not answer" "$STATE/log/slurmdbd.log"
}

register_cluster() {
  if ! sacctmgr -n -P list cluster format=Cluster | grep -qx "$CLUSTER"; then
    sacctmgr -i add cluster "$CLUSTER" >/dev/null || die_log "sacctmgr add cluster failed" "$STATE/log/slurmdbd.log"
  fi
}

start_slurmctld() {
  alive "$STATE/run/slurmctld.pid" slurmctld && return 0
  slurmctld 9>&- || die_log "slurmctld failed to start" "$STATE/log/slurmctld.log"
  wait_for 30 "slurmctld" bash -c "scontrol ping | grep -q UP" ||
    die_log "slurmctld does not answer" "$STATE/log/slurmctld.log"
}

start_slurmd() {
  alive "$STATE/run/slurmd.pid" slurmd && return 0
  slurmd 9>&- || die_log "slurmd failed to start" "$STATE/log/slurmd.log"
}

node_state() { sinfo -h -N -n "$(hostname -s)" -o %T 2>/dev/null | head -n1; }
wait_node_idle() {
  local deadline=$((SECONDS + 40)) state resumed=0
  while ((SECONDS < deadline)); do
    state=$(node_state)
    case "$state" in
      idle | mixed | allocated | completing) return 0 ;;
      down* | drain* | fail*)  # a restart can leave the node down with a reason: ours to clear
        if ((!resumed)); then scontrol update nodename="$(hostname -s)" state=resume >/dev/null 2>&1 || true; resumed=1; fi ;;
    esac
    sleep 0.5
  done
  die_log "node $(hostname -s) is not idle (state: ${state:-unknown}); $(sinfo -h -R 2>/dev/null)" "$STATE/log/slurmd.log"
}

cluster_running() {
  alive "$STATE/run/slurmdbd.pid" slurmdbd && alive "$STATE/run/slurmctld.pid" slurmctld &&
    alive "$STATE/run/slurmd.pid" slurmd && scontrol ping 2>/dev/null | grep -q UP &&
    [[ $(node_state) =~ ^(idle|mixed|allocated|completing)$ ]]
}

# ---------------------------------------------------------------------------------------------- main
take_lock  # fd 9; every daemon is started with 9>&- so that it does not keep the lock
install -d -m 0755 "$STATE" "$STATE/log" "$STATE/run" "$STATE/ctld" "$STATE/slurmd"
install -d -m 0700 "$STATE/etc"
install_packages
resolve_loopback
# The accounting DB password, made once; it ends up in slurmdbd.conf (mode 0600).
[[ -s "$STATE/etc/db.pass" ]] || (umask 077 && head -c 18 /dev/urandom | base64 | tr -d '/+=' >"$STATE/etc/db.pass")
DB_PASS=$(cat "$STATE/etc/db.pass")
write_configs
if ((CHANGED == 0)) && cluster_running; then
  log "already running (cluster $CLUSTER, partition $PARTITION, conf $CONF_DIR/slurm.conf; $(elapsed) s)"
  exit 0
fi
if ((CHANGED)); then  # a new configuration: restart the SLURM daemons (jobs, MariaDB and munge stay)
  "$HERE/stop.sh" --daemons-only >/dev/null || true
fi
start_munge
start_mariadb
setup_database
start_slurmdbd
register_cluster
start_slurmctld
start_slurmd
wait_node_idle
log "running: cluster $CLUSTER, partition $PARTITION, node $(hostname -s), conf $CONF_DIR/slurm.conf," \
  "state $STATE ($(elapsed) s)"
