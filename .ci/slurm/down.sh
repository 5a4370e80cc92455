#!/usr/bin/env bash
# Stop the cluster started by .ci/slurm/up.sh: cancel leftover jobs, then stop each daemon by the PID
# in its pid file (never by name, so nothing else on the machine is touched), in reverse start order,
# and remove pid files and sockets a killed daemon leaves behind (slurmctld/slurmdbd run as SlurmUser
# and cannot remove their files in /run; Debian's slurmctld prerm runs scancel while its pid file
# exists). Packages and /etc/slurm stay installed, so the next up.sh takes seconds. Safe to re-run.
set -uo pipefail

# shellcheck source=.ci/slurm/lib.sh
source "$(dirname "$0")/lib.sh"

[ "$(id -u)" = 0 ] || { echo "[slurm-down] must run as root" >&2; exit 2; }

if running "$SLURMCTLD_PID" slurmctld && command -v scancel >/dev/null; then
  timeout 10 scancel --user=root >/dev/null 2>&1 || true
fi

stop_pid "$SLURMD_PID" slurmd
stop_pid "$SLURMCTLD_PID" slurmctld
stop_pid "$SLURMDBD_PID" slurmdbd
stop_pid "$MARIADB_PID" mariadbd
stop_pid "$MUNGE_PID" munged
rm -f /run/mysqld/mysqld.sock /run/munge/munge.socket.2 /run/munge/munge.socket.2.lock \
  "${SLURM_CI_DIR:-/run/slurm-ci}/pids.txt"
exit 0
