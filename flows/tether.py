"""Run a Python module tied to the life of the process that started it (not imported: run by path).

    python flows/tether.py PARENT_PID MODULE [ARG ...]

runs `python -m MODULE ARG ...` in this process and ends it when process PARENT_PID (the one that
started it) is gone, even by `kill -9`: on Linux the kernel sends SIGTERM at once (prctl
PR_SET_PDEATHSIG, set here before the module starts, kept across its life); on every system a
watchdog thread checks the parent once a second and sends SIGTERM itself. SIGKILL follows
GRACE_S later if the module has not ended by then (a server that hangs in its shutdown).

Why: `spotcast`'s temporary Prefect server is a process of its own. Prefect starts its own temporary
server (`prefect.server.api.server.SubprocessASGIServer`) with a plain Popen and stops it at exit
(atexit): a `kill -9` of the command left it running, reparented to PID 1. Spotcast therefore starts
that server itself through this file (`flows.servers.start_temporary_server`).

The death signal of Linux follows the *thread* that started this process: start it from a thread
that lives as long as its process (the main thread).
"""

from __future__ import annotations

import ctypes
import os
import runpy
import signal
import sys
import threading
import time

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
POLL_S = 1.0
GRACE_S = 10.0


def _die_with_parent(parent: int) -> None:
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)  # on failure the watchdog still acts
    if os.getppid() != parent:  # the parent died before the death signal was set
        sys.exit(1)
    threading.Thread(target=_watch, args=(parent,), name="tether", daemon=True).start()


def _watch(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(POLL_S)
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(GRACE_S)
    os.kill(os.getpid(), signal.SIGKILL)


def main() -> None:
    parent, module, *args = sys.argv[1:]
    _die_with_parent(int(parent))
    sys.path[0] = os.getcwd()  # as `python -m MODULE` has it, not this file's folder
    sys.argv = [module, *args]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
