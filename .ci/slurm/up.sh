#!/usr/bin/env bash
# Bring up a real single-node SLURM cluster on loopback (munge, MariaDB, slurmdbd, slurmctld, slurmd),
# as root and without systemd, so CI can drive the workflow through snakemake-executor-plugin-slurm.
#
# Why slurmdbd/MariaDB: the plugin polls job states with `sacct`; without accounting storage it waits
# forever (see profiles/README.md). Why fake GPUs: GPU requests (--gpus/--gres) are rejected unless the
# node has gpu GRES; character-device clones of /dev/null are enough for SLURM to schedule them.
#
# Idempotent: daemons already running (live PID in their pid file) are kept; if the generated
# slurm.conf/gres.conf changed (e.g. a different FAKE_GPUS), slurmctld and slurmd are restarted.
# Every wait is bounded; on failure the daemons' log tails are printed. Stop with .ci/slurm/down.sh.
#
# Environment:
#   FAKE_GPUS=N        fake GPUs of type $FAKE_GPU_TYPE on the node (default 0)
#   FAKE_GPU_TYPE=T    GRES type of the fake GPUs (default a100)
#   SLURM_CI_DIR=DIR   scratch for fake devices, MariaDB log and pids.txt (default /run/slurm-ci)
#   APT_TIMEOUT=S      bound for apt-get update/install (default 600 s)
# Tested on Debian 12 (SLURM 22.05, MariaDB 10.11).
set -Eeuo pipefail

FAKE_GPUS=${FAKE_GPUS:-0}
FAKE_GPU_TYPE=${FAKE_GPU_TYPE:-a100}
SLURM_CI_DIR=${SLURM_CI_DIR:-/run/slurm-ci}
APT_TIMEOUT=${APT_TIMEOUT:-600}
CLUSTER=ci
ACCOUNT=ciacct
export DEBIAN_FRONTEND=noninteractive

# shellcheck source=.ci/slurm/lib.sh
source "$(dirname "$0")/lib.sh"

log() { echo "[slurm-up] $*" >&2; }

dump_logs() {
  log "bring-up failed; log tails follow"
  for f in /var/log/slurm/slurmdbd.log /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log \
    "$SLURM_CI_DIR/mariadb.log"; do
    [ -f "$f" ] && { echo "--- $f" >&2; tail -n 20 "$f" >&2; }
  done
  return 0
}
trap 'dump_logs' ERR

[ "$(id -u)" = 0 ] || { log "must run as root (starts system daemons)"; exit 2; }

# wait_for <seconds> <cmd...>: poll every 0.5 s, each try bounded to 5 s
wait_for() {
  local deadline=$((SECONDS + $1)); shift
  while [ "$SECONDS" -lt "$deadline" ]; do
    timeout 5 "$@" >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  log "timed out waiting for: $*"; return 1
}

install_packages() {
  local missing=""
  command -v munged >/dev/null || missing="$missing munge"
  command -v slurmctld >/dev/null || missing="$missing slurmctld"
  command -v slurmd >/dev/null || missing="$missing slurmd"
  command -v sbatch >/dev/null || missing="$missing slurm-client"
  command -v slurmdbd >/dev/null || missing="$missing slurmdbd"
  command -v mariadbd >/dev/null || missing="$missing mariadb-server"
  [ -z "$missing" ] && return 0
  command -v apt-get >/dev/null || { log "missing:$missing and no apt-get to install them"; exit 3; }
  log "installing:$missing"
  timeout -k 10 "$APT_TIMEOUT" apt-get -o DPkg::Lock::Timeout=60 update -qq
  # shellcheck disable=SC2086
  timeout -k 10 "$APT_TIMEOUT" apt-get -o DPkg::Lock::Timeout=60 install -y -qq \
    --no-install-recommends $missing >/dev/null
}

# write_if_changed <file> <mode>: stdin -> file; returns 0 when the content changed
write_if_changed() {
  local tmp
  tmp=$(mktemp "$1.XXXXXX")
  cat >"$tmp"
  chmod "$2" "$tmp"
  if [ -f "$1" ] && cmp -s "$tmp" "$1"; then rm -f "$tmp"; return 1; fi
  mv -f "$tmp" "$1"
}

write_configs() { # sets CONF_CHANGED=1 when slurm.conf or gres.conf changed
  local host ncpu mem_mb gres_types="" gres_node="" i
  host=$(hostname -s)
  ncpu=$(nproc)
  # half the machine's memory: never more than slurmd finds (that would make the node INVAL)
  mem_mb=$(awk '/^MemTotal:/ {print int($2 / 2048)}' /proc/meminfo)
  CONF_CHANGED=0
  mkdir -p "$SLURM_CI_DIR" /etc/slurm
  if [ "$FAKE_GPUS" -gt 0 ]; then
    for i in $(seq 0 $((FAKE_GPUS - 1))); do
      [ -c "$SLURM_CI_DIR/fakegpu$i" ] || mknod "$SLURM_CI_DIR/fakegpu$i" c 1 3
    done
    # AccountingStorageTRES: sacct's ReqTRES/AllocTRES then show gres/gpu
    gres_types="GresTypes=gpu
AccountingStorageTRES=gres/gpu"
    gres_node="Gres=gpu:${FAKE_GPU_TYPE}:${FAKE_GPUS}"
    printf 'AutoDetect=off\nNodeName=%s Name=gpu Type=%s File=%s/fakegpu[0-%d]\n' \
      "$host" "$FAKE_GPU_TYPE" "$SLURM_CI_DIR" $((FAKE_GPUS - 1)) |
      write_if_changed /etc/slurm/gres.conf 644 && CONF_CHANGED=1
  elif [ -f /etc/slurm/gres.conf ]; then
    rm -f /etc/slurm/gres.conf; CONF_CHANGED=1
  fi
  # EnforcePartLimits=ALL: a job asking for more CPUs/memory than the node has is rejected at
  # submission instead of pending forever. MinJobAge keeps finished jobs visible to squeue.
  # AccountingStoreFlags=job_comment: sacct shows the comment, where the plugin names the rule.
  write_if_changed /etc/slurm/slurm.conf 644 <<CONF && CONF_CHANGED=1 || true
ClusterName=${CLUSTER}
SlurmctldHost=${host}(127.0.0.1)
SlurmUser=slurm
AuthType=auth/munge
CredType=cred/munge
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=/var/lib/slurm/slurmctld
SlurmdSpoolDir=/var/lib/slurm/slurmd
SlurmctldPidFile=${SLURMCTLD_PID}
SlurmdPidFile=${SLURMD_PID}
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
${gres_types}
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=6819
AccountingStoreFlags=job_comment
JobAcctGatherType=jobacct_gather/linux
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
MpiDefault=none
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
MinJobAge=300
EnforcePartLimits=ALL
KillWait=5
Waittime=0
NodeName=${host} NodeAddr=127.0.0.1 CPUs=${ncpu} RealMemory=${mem_mb} ${gres_node} State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
  write_if_changed /etc/slurm/slurmdbd.conf 600 <<'CONF' || true
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=6819
SlurmUser=slurm
LogFile=/var/log/slurm/slurmdbd.log
PidFile=/run/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageLoc=slurm_acct_db
StorageUser=slurm
StoragePass=slurmpw
CONF
  chown slurm:slurm /etc/slurm/slurmdbd.conf
  mkdir -p /var/log/slurm /var/lib/slurm/slurmctld /var/lib/slurm/slurmd
  chown -R slurm:slurm /var/log/slurm /var/lib/slurm
}

start_munge() {
  running "$MUNGE_PID" munged && return 0
  [ -s /etc/munge/munge.key ] || { mungekey --create --force 2>/dev/null || \
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 2>/dev/null; }
  chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
  mkdir -p /run/munge && chown munge:munge /run/munge
  # --force: start even when a killed munged left its socket behind
  runuser -u munge -- /usr/sbin/munged --force
  wait_for 20 sh -c 'munge -n | unmunge'
}

start_mariadb() {
  running "$MARIADB_PID" mariadbd || {
    mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
    [ -d /var/lib/mysql/mysql ] || timeout 120 mariadb-install-db --user=mysql >/dev/null
    setsid /usr/sbin/mariadbd --user=mysql --pid-file="$MARIADB_PID" \
      >"$SLURM_CI_DIR/mariadb.log" 2>&1 </dev/null &
  }
  wait_for 60 mariadb-admin ping
  timeout 30 mariadb -e "CREATE DATABASE IF NOT EXISTS slurm_acct_db;
    CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurmpw';
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost'; FLUSH PRIVILEGES;"
}

start_slurmdbd() {
  running "$SLURMDBD_PID" slurmdbd || /usr/sbin/slurmdbd
  wait_for 60 sacctmgr -n show cluster
  # with accounting, a job's account must be an association of the submitting user
  timeout 20 sacctmgr -i add cluster "$CLUSTER" >/dev/null || true
  timeout 20 sacctmgr -i add account "$ACCOUNT" Description=ci Organization=ci >/dev/null || true
  timeout 20 sacctmgr -i add user root Account="$ACCOUNT" DefaultAccount="$ACCOUNT" >/dev/null || true
}

start_slurm() {
  if [ "$CONF_CHANGED" = 1 ]; then
    stop_pid "$SLURMD_PID" slurmd; stop_pid "$SLURMCTLD_PID" slurmctld
  fi
  running "$SLURMCTLD_PID" slurmctld || /usr/sbin/slurmctld
  wait_for 60 scontrol ping
  running "$SLURMD_PID" slurmd || /usr/sbin/slurmd
  local host
  host=$(hostname -s)
  # a node left DOWN/DRAIN by an earlier kill is put back into service once
  if ! wait_for 30 sh -c "sinfo -h -N -o %t | grep -Eqx 'idle|mix|alloc'"; then
    timeout 10 scontrol update nodename="$host" state=resume || true
    wait_for 30 sh -c "sinfo -h -N -o %t | grep -Eqx 'idle|mix|alloc'"
  fi
}

main() {
  local t0=$SECONDS
  install_packages
  write_configs
  start_munge
  start_mariadb
  start_slurmdbd
  start_slurm
  for f in "$MUNGE_PID" "$MARIADB_PID" "$SLURMDBD_PID" "$SLURMCTLD_PID" "$SLURMD_PID"; do
    echo "$f $(cat "$f")"
  done >"$SLURM_CI_DIR/pids.txt"
  timeout 10 sinfo -N -o '%N %P %T %c %m %G' >&2
  log "up in $((SECONDS - t0)) s (pids: $SLURM_CI_DIR/pids.txt)"
}

main "$@"
