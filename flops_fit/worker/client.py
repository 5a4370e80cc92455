"""The job's side of the worker: run a ``flops-fit`` command in a child of the warm worker.

The first job that finds no worker starts it and waits for it (under a lock, so concurrent jobs start
one); there is no separate start ahead of the jobs: a job's environment (Snakemake sets
``OMP_NUM_THREADS`` and friends per job, which name the worker) is known only to the job itself.

Standard library only (the job starts in about 0.1 s instead of 5.5 s). The job process stays alive
for the whole run and ends with the run's exit status, so Snakemake, SLURM and ``retries`` see the
same job they saw before; SIGTERM, SIGINT, SIGUSR1 and SIGHUP sent to the job are relayed to the run.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

from flops_fit.worker.address import worker_socket

#: the environment variable that asks for the worker: its idle seconds ("0", empty or unset: none).
#: The workflow sets it rather than adding an option to the train rule's command, because Snakemake
#: reruns a job whose shell command or params changed, and how a job starts must never retrain a run.
WORKER_ENV = "FLOPS_FIT_WORKER"
#: signals relayed from the job to its run (SIGTERM/SIGUSR1 make the run checkpoint and exit 75)
RELAYED = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1, signal.SIGHUP)


def requested_idle_seconds() -> float | None:
    """The worker's idle seconds from :data:`WORKER_ENV`; None when no worker is asked for, or inside
    torchrun (each of several processes of one run needs its own rank set-up, not a shared worker)."""
    value = os.environ.get(WORKER_ENV, "").strip()
    if not value or "WORLD_SIZE" in os.environ:
        return None
    try:
        seconds = float(value)
    except ValueError:
        print(f"flops-fit: ignoring {WORKER_ENV}={value!r}: give the worker's idle seconds (e.g. 120) or 0", file=sys.stderr)
        return None
    return seconds if seconds > 0 else None


def connect(address: Path) -> socket.socket | None:
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(str(address))
        return conn
    except OSError:
        conn.close()
        return None


def spawn_worker(address: Path, idle_seconds: float) -> subprocess.Popen:
    with open(address.with_suffix(".log"), "a") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "flops_fit", "worker", "--socket", str(address), "--idle-seconds", str(idle_seconds)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,  # not in the job's process group: it outlives the job
        )


def start_worker(address: Path, idle_seconds: float, timeout: float) -> socket.socket | None:
    """Start a worker on ``address`` and connect to it (concurrent jobs wait on a lock, then connect)."""
    with open(address.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        conn = connect(address)
        if conn is not None:  # another job started it while this one waited for the lock
            return conn
        worker = spawn_worker(address, idle_seconds)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            conn = connect(address)
            if conn is not None:
                return conn
            status = worker.poll()
            # exit 0 without listening: a worker started elsewhere holds the address (keep connecting)
            if status not in (None, 0) or (status == 0 and not address.exists()):
                return None
            time.sleep(0.02)
        return None


def send_request(conn: socket.socket, argv: list[str]) -> None:
    socket.send_fds(conn, [b"F"], [0, 1, 2])
    request = json.dumps({"argv": argv, "cwd": os.getcwd(), "env": dict(os.environ)}).encode()
    conn.sendall(struct.pack("!I", len(request)) + request)


def read_line(stream) -> tuple[str, int] | None:
    line = stream.readline().decode().split()
    return (line[0], int(line[1])) if len(line) == 2 else None


def relay(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:  # the run has just ended; its exit status is on its way
        pass


def run_in_worker(argv: list[str], idle_seconds: float, start_timeout: float = 180.0) -> int | None:
    """Run ``flops-fit <argv>`` in a child of the worker; its exit status, or None when no worker
    could take the run (the caller then runs it in its own process). ``start_timeout`` covers
    starting a worker and its imports on a loaded machine."""
    try:
        address = worker_socket()
        conn = connect(address) or start_worker(address, idle_seconds, start_timeout)
    except OSError as error:
        print(f"flops-fit: no worker ({error}); running flops-fit {argv[0]} in this process", file=sys.stderr)
        return None
    if conn is None:
        print(f"flops-fit: the worker did not start (see {address.with_suffix('.log')}); "
              f"running flops-fit {argv[0]} in this process", file=sys.stderr)
        return None
    with conn:
        conn.settimeout(start_timeout)  # the worker may still be importing torch
        try:
            send_request(conn, argv)
            stream = conn.makefile("rb")
            started = read_line(stream)
        except OSError:
            started = None
        if not started or started[0] != "pid":
            print(f"flops-fit: the worker did not take the job; running flops-fit {argv[0]} in this process",
                  file=sys.stderr)
            return None
        pid = started[1]
        for sig in RELAYED:
            signal.signal(sig, lambda signum, frame: relay(pid, signum))
        conn.settimeout(None)
        try:
            ended = read_line(stream)
        except OSError:
            ended = None
    for sig in RELAYED:  # the run is over: a late signal must not replace its exit status
        signal.signal(sig, signal.SIG_IGN)
    if not ended or ended[0] != "exit":
        print(f"flops-fit: lost the worker while it ran pid {pid}", file=sys.stderr)
        return 1
    return ended[1]
