# Shared by up.sh and down.sh (sourced): the daemons' pid files and how to check and stop them by PID.
# The pid files are written by the daemons themselves (mariadbd via --pid-file).

MUNGE_PID=/run/munge/munged.pid
MARIADB_PID=/run/mysqld/mysqld.pid
SLURMDBD_PID=/run/slurmdbd.pid
SLURMCTLD_PID=/run/slurmctld.pid
SLURMD_PID=/run/slurmd.pid

# alive <pid> <comm>: the process exists, runs <comm> and is not a zombie. Zombies matter: in a
# container whose PID 1 does not reap, a killed daemon stays in /proc (state Z) with its old name.
alive() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  [ "$(cat "/proc/$1/comm" 2>/dev/null)" = "$2" ] || return 1
  # field 3 of /proc/PID/stat (after the parenthesised name) is the state
  stat=${stat##*) }
  [ "${stat%% *}" != Z ]
}

# running <pidfile> <comm>: the pid file names a live <comm> process
running() {
  [ -s "$1" ] && alive "$(cat "$1")" "$2"
}

# stop_pid <pidfile> <comm>: TERM, wait up to 10 s, then KILL, only if the PID is a live <comm>;
# always remove the pid file (slurmctld/slurmdbd run as SlurmUser and cannot remove theirs in /run)
stop_pid() {
  local pid
  if running "$1" "$2"; then
    pid=$(cat "$1")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 40); do alive "$pid" "$2" || break; sleep 0.25; done
    if alive "$pid" "$2"; then kill -9 "$pid" 2>/dev/null || true; fi
    echo "[slurm] stopped $2 ($pid)" >&2
  fi
  rm -f "$1"
}
