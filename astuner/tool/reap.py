"""Ending the program of a ``process`` sandbox from the caller's side, while its supervisor lives.

Why: the supervisor (``worker.py``) is a child subreaper, so every orphan of the program (a
``setsid`` daemon, a double fork, a raw ``fork`` through ctypes) stays its descendant, and it ends
them all when the program returns. When the caller has to stop a program early (timeout, the
scratch cap, cancellation, shutdown), killing the supervisor first would hand the orphans to init,
and without a dedicated uid to kill them by they would outlive the call (a timed-out program's
``setsid`` daemon, for one). So the supervisor's descendants are killed first, while it still
adopts the orphans of each one killed, which reaches the whole tree; the supervisor is killed after.

Not guaranteed: a descendant found by the ``/proc`` scan can exit and its pid be reused before the
signal is sent (the window is microseconds; every sandbox-killing path here shares it). A program
that killed its supervisor itself has no subreaper left: its orphans went to init before the
caller could look, and only a dedicated uid (root callers) or bwrap's PID namespace still ends
them.
"""

from __future__ import annotations

import os
import signal
import time
from collections import defaultdict

DEADLINE_S = 1.0
"""How long ``kill_descendants`` keeps scanning while it still finds live descendants."""


def _live_parents() -> dict[int, int]:
    """pid -> parent pid of every live (non-zombie) process, from ``/proc``."""
    parents = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 1 and fields[0] not in (b"Z", b"X"):
            parents[int(entry)] = int(fields[1])
    return parents


def descendants(root: int) -> list[int]:
    """Live descendants of ``root`` (not ``root`` itself), from one scan of ``/proc``."""
    children: dict[int, list[int]] = defaultdict(list)
    for pid, parent in _live_parents().items():
        children[parent].append(pid)
    found: list[int] = []
    pending = [root]
    while pending:
        for child in children.get(pending.pop(), ()):
            found.append(child)
            pending.append(child)
    return found


def kill_descendants(root: int, deadline_s: float = DEADLINE_S) -> int:
    """SIGKILL every descendant of ``root``, scanning again until a scan finds none (children forked
    during a round, or adopted by ``root`` as orphans, are caught by the next), for at most
    ``deadline_s``. Returns how many signals were sent. ``root`` must be a live child subreaper for
    the tree to stay below it while its members die."""
    sent = 0
    deadline = time.monotonic() + deadline_s
    while True:
        found = descendants(root)
        for pid in found:
            try:
                os.kill(pid, signal.SIGKILL)
                sent += 1
            except (ProcessLookupError, PermissionError):
                pass
        if not found or time.monotonic() > deadline:
            return sent
        time.sleep(0.002)
