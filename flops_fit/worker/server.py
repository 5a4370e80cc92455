"""The fork server (``flops-fit worker``): torch and flops_fit imported once, a forked child per job.

Protocol, one connection per run (the client is :mod:`flops_fit.worker.client`):

1. the client sends its standard input, output and error as file descriptors (``SCM_RIGHTS``), then
   a length-prefixed JSON request ``{"argv", "cwd", "env"}``: the ``flops-fit`` arguments (``train``,
   ``stable`` or ``script``);
2. the server forks; the child takes the streams, working directory and environment, restores default
   signal handlers and runs the ``flops-fit`` command as a fresh process would; the server answers
   ``pid <pid>`` so that the client can relay signals to the child;
3. when the child exits the server answers ``exit <status>`` (128 + N for a child killed by signal N)
   and closes the connection. A client that disconnects first (killed) gets its child stopped with
   SIGTERM, which checkpoints the run.

The server stays single-threaded (forking a threaded process can copy a held lock into the child)
and keeps torch at one intra-op thread, so no OpenMP pool exists in the parent when it forks; each
child sets its own threads.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import selectors
import signal
import socket
import struct
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from flops_fit.worker.client import WORKER_ENV

log = logging.getLogger("flops_fit.worker")

#: how often finished children are reaped and the idle clock checked (seconds)
POLL_SECONDS = 0.05
#: imported once by the worker (the user's model, data and loss are not: each child builds its own): what
#: train jobs need, and what the rules' scripts add to it (the figures' matplotlib, the summary page)
PRELOADED = (
    "torch._dynamo", "flops_fit.pipeline", "flops_fit.training", "flops_fit.train_cli", "flops_fit.stable_cli",
    "flops_fit.script_cli", "flops_fit.plotting.suite", "flops_fit.report_page",
)
#: the signals a child must handle as a process of its own would (the server ignores none of them)
CHILD_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1, signal.SIGHUP, signal.SIGCHLD)


def preload() -> int:
    """Import what every run needs, so that no child pays for it (torch's compiler stack included:
    building an AdamW imports ``torch._dynamo``, 2 s of a 5.5 s start-up on a 2-core CPU). Returns
    torch's default intra-op thread count, which each child gets back (the worker itself keeps one)."""
    import torch

    default_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    for module in PRELOADED:
        importlib.import_module(module)
    if torch.cuda.is_initialized():  # a forked child could not use CUDA then
        raise RuntimeError("CUDA was initialised while importing; the worker cannot fork CUDA runs")
    return default_threads


def read_request(conn: socket.socket) -> tuple[dict, list[int]]:
    """The client's three standard streams and its JSON request."""
    _, fds, _, _ = socket.recv_fds(conn, 1, 3)
    if len(fds) != 3:
        raise ConnectionError(f"expected 3 file descriptors, got {len(fds)}")
    (size,) = struct.unpack("!I", _recv_exactly(conn, 4))
    return json.loads(_recv_exactly(conn, size)), fds


def _recv_exactly(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            raise ConnectionError("the client closed the connection mid-request")
        data += chunk
    return data


def run_child(request: dict, fds: list[int], threads: int) -> int:
    """In the forked child: become the job's process, as a fresh one would start (streams, signals,
    directory, environment, torch's default threads, unseeded random generators), then run the
    ``flops-fit`` command; its exit status."""
    import numpy as np
    import torch

    for target, fd in zip((0, 1, 2), fds):
        os.dup2(fd, target)
        os.close(fd)
    for sig in CHILD_SIGNALS:
        signal.signal(sig, signal.SIG_DFL)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    os.environ.pop(WORKER_ENV, None)  # the child runs the command itself
    logging.getLogger().handlers.clear()
    torch.set_num_threads(threads)
    torch.seed()  # runs seed themselves; anything else draws as in a new process, not as its siblings
    np.random.seed()
    from flops_fit.cli import main

    sys.argv = ["flops-fit", *request["argv"]]
    try:
        return main(request["argv"])
    except SystemExit as stop:
        return stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    except BaseException:  # noqa: BLE001 - the child reports everything as a process would, then exits
        traceback.print_exc()
        return 1


@dataclass
class Child:
    pid: int
    conn: socket.socket


class Server:
    """Accept runs on ``address``, fork one child per run, report each child's exit status."""

    def __init__(self, address: Path, idle_seconds: float) -> None:
        self.address = address
        self.idle_seconds = idle_seconds
        self.child_threads = 1  # torch's default for a new process, once preload() has run
        self.children: dict[int, Child] = {}
        self.selector = selectors.DefaultSelector()
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.stopping = False

    def bind(self) -> bool:
        """Listen on the address; False if a live worker already does (two starts raced)."""
        try:
            self.listener.bind(str(self.address))
        except OSError:
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                probe.connect(str(self.address))
                return False
            except OSError:  # a socket file left by a worker that died: take its place
                self.address.unlink(missing_ok=True)
                self.listener.bind(str(self.address))
            finally:
                probe.close()
        self.listener.listen(64)
        self.selector.register(self.listener, selectors.EVENT_READ)
        return True

    def serve(self) -> None:
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        last_busy = time.monotonic()
        try:
            while not self.stopping:
                for key, _ in self.selector.select(POLL_SECONDS):
                    if key.fileobj is self.listener:
                        self._accept()
                    else:
                        self._client_closed(key.data)
                self._reap()
                if self.children:
                    last_busy = time.monotonic()
                elif time.monotonic() - last_busy > self.idle_seconds:
                    log.info("idle for %.0f s: exiting", self.idle_seconds)
                    break
        finally:
            self._shutdown()

    def _accept(self) -> None:
        conn, _ = self.listener.accept()
        conn.settimeout(10)
        try:
            request, fds = read_request(conn)
        except (OSError, ValueError) as error:
            log.warning("dropped a malformed request: %s", error)
            conn.close()
            return
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the child never returns into the server loop
            self.selector.close()
            self.listener.close()
            for sibling in self.children.values():  # a job must see EOF when the worker goes, not when its siblings do
                sibling.conn.close()
            conn.close()
            code = 1
            try:
                code = run_child(request, fds, self.child_threads)
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                logging.shutdown()
                os._exit(code)
        for fd in fds:
            os.close(fd)
        log.info("pid %d: flops-fit %s", pid, " ".join(request["argv"]))
        conn.sendall(f"pid {pid}\n".encode())
        conn.setblocking(False)
        child = Child(pid, conn)
        self.children[pid] = child
        self.selector.register(conn, selectors.EVENT_READ, child)

    def _client_closed(self, child: Child) -> None:
        """The job's process went away (killed): stop its run, which checkpoints on SIGTERM."""
        try:
            if child.conn.recv(1):
                return
        except BlockingIOError:
            return
        except OSError:
            pass
        log.warning("pid %d: its job disconnected; sending SIGTERM", child.pid)
        self.selector.unregister(child.conn)
        try:
            os.kill(child.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass

    def _reap(self) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            child = self.children.pop(pid, None)
            if child is None:
                continue
            code = os.waitstatus_to_exitcode(status)
            code = 128 - code if code < 0 else code
            log.info("pid %d: exit %d", pid, code)
            try:
                self.selector.unregister(child.conn)
            except (KeyError, ValueError):  # already unregistered: its job disconnected
                pass
            try:
                child.conn.setblocking(True)
                child.conn.sendall(f"exit {code}\n".encode())
            except OSError:
                pass
            child.conn.close()

    def _stop(self, signum: int, frame: object) -> None:
        self.stopping = True

    def _shutdown(self) -> None:
        self.listener.close()
        self.address.unlink(missing_ok=True)
        for child in self.children.values():  # a stopped worker stops its runs; they checkpoint first
            try:
                os.kill(child.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        while self.children:
            self._reap()
            time.sleep(POLL_SECONDS)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--socket", type=Path, required=True, help="the Unix socket to listen on")
    parser.add_argument("--idle-seconds", type=float, default=120.0, help="exit after this long without a run")


def main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    server = Server(args.socket, args.idle_seconds)
    if not server.bind():
        log.info("a worker already listens on %s", args.socket)
        return 0
    try:
        server.child_threads = preload()
    except Exception:  # noqa: BLE001 - no socket left behind: waiting jobs see EOF and run in their own processes
        log.exception("could not import what jobs need; exiting")
        server._shutdown()
        return 1
    log.info("ready on %s (idle exit after %.0f s)", args.socket, args.idle_seconds)
    server.serve()
    return 0
