"""Stop the servers this process started, however the process ends.

A server astuner launches (``vllm serve``) runs in its own session, so that Ctrl-C in the terminal
reaches astuner alone and astuner decides how the server stops, and so that its whole process group
(the API server and the engine processes it forks) can be signalled at once. The price is that
nothing ends it automatically when astuner ends; this module closes that gap:

- ``stop_process_group`` ends a started process and everything in its group: SIGTERM, a grace
  period, then SIGKILL, and reaps the leader.
- ``guard`` tracks a live server until ``unguard``; every guarded server is stopped at interpreter
  exit (``atexit``: normal exit, an uncaught exception, ``sys.exit``, Ctrl-C) and on SIGTERM or
  SIGHUP, after which the signal's previous handler runs (by default the process then dies of it).
  Ctrl-C is Python's ``KeyboardInterrupt``: the ``finally`` blocks and context managers of the
  caller stop the server first, and ``atexit`` finishes the job if a second Ctrl-C cut that short.

Not guaranteed: SIGKILL of astuner, or a crash of the interpreter itself, runs no Python code, so
the server survives; it is in astuner's process registry, and ``astuner --kill vllm`` ends it.
Signal handlers can only be installed from the main thread; a server started from another thread
relies on ``atexit`` and the caller's cleanup. A forked child never stops its parent's servers.
"""

from __future__ import annotations

import atexit
import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Protocol

HANDLED_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


class Stoppable(Protocol):
    def stop(self) -> None: ...


_live: dict[int, Stoppable] = {}
_lock = threading.RLock()
_previous: dict[int, Any] = {}
_atexit_registered = False


def _stat(pid: int) -> list[str] | None:
    """Fields of ``/proc/<pid>/stat`` after the command name (0: state, 2: process group)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def group_members(pgid: int) -> list[int]:
    """Processes of group ``pgid`` that are still running (zombies excluded)."""
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            fields = _stat(int(name))
            if fields and int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
                out.append(int(name))
    return out


def _killpg(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _wait_gone(pgid: int, deadline: float) -> bool:
    while group_members(pgid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def stop_process_group(proc: subprocess.Popen, grace_s: float = 15.0) -> None:
    """End ``proc`` (a session leader we started) and its whole process group, then reap it.

    The leader is reaped only at the end: until then its pid cannot be reused, so the group id
    signalled is still ours. A leader already reaped (it died on its own) is signalled through its
    group only while members remain, which keep the group id from being reused. Idempotent; safe to
    call again after an interrupted call.
    """
    pgid = proc.pid
    if proc.returncode is None or group_members(pgid):
        _killpg(pgid, signal.SIGTERM)
        if not _wait_gone(pgid, time.monotonic() + grace_s):
            _killpg(pgid, signal.SIGKILL)
            _wait_gone(pgid, time.monotonic() + 5.0)
    try:
        proc.wait(timeout=5.0)
    except subprocess.TimeoutExpired:
        _killpg(pgid, signal.SIGKILL)
        proc.wait()


def guard(server: Stoppable) -> None:
    """Stop ``server`` at exit or on SIGTERM/SIGHUP unless ``unguard`` is called first."""
    global _atexit_registered
    with _lock:
        _live[id(server)] = server
        if not _atexit_registered:
            atexit.register(stop_all)
            _atexit_registered = True
        if threading.current_thread() is threading.main_thread():
            for sig in HANDLED_SIGNALS:
                if sig not in _previous:
                    _previous[sig] = signal.signal(sig, _on_signal)


def unguard(server: Stoppable) -> None:
    """Forget ``server``; with none left, give the signals back to their previous handlers."""
    with _lock:
        _live.pop(id(server), None)
        if not _live and threading.current_thread() is threading.main_thread():
            _restore_handlers()


def live() -> list[Stoppable]:
    """The servers currently guarded (for tests and diagnostics)."""
    with _lock:
        return list(_live.values())


def stop_all() -> None:
    """Stop every guarded server of this process (a forked child starts with none)."""
    for server in live():
        server.stop()


def _restore_handlers() -> None:
    for sig, previous in list(_previous.items()):
        if signal.getsignal(sig) is _on_signal:
            signal.signal(sig, previous if previous is not None else signal.SIG_DFL)
        del _previous[sig]


def _on_signal(signum: int, frame: Any) -> None:
    previous = _previous.get(signum, signal.SIG_DFL)
    stop_all()
    with _lock:
        _restore_handlers()
    if callable(previous):
        previous(signum, frame)
    elif previous != signal.SIG_IGN:
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)


def _reset_after_fork() -> None:
    global _lock
    _lock = threading.RLock()
    _live.clear()


os.register_at_fork(after_in_child=_reset_after_fork)
