"""A ``process`` sandbox's scratch dir when it lies on the host disk: its size watched while the
program runs, and its removal afterwards.

Why: without a mount namespace (a container that withholds CAP_SYS_ADMIN, as GPU containers often
do; a non-root caller without unprivileged user namespaces) the fallback cannot give the program a
tmpfs of its own, so its scratch dir is an ordinary directory in the host's temporary dir.
``RLIMIT_FSIZE`` caps each file (``max_file_mb``) but not how many there are. The caller polls the
dir's size with ``watch`` and kills the program once it is over ``scratch_mb`` (every file or
directory counts as at least ``ENTRY_BYTES``, so a flood of empty files hits the cap too, and a
scan never visits more than ``scratch_mb / ENTRY_BYTES`` entries); ``remove`` deletes what is left.

Not guaranteed: the check is a poll (every ``POLL_S``, longer while one scan is slow), so a
program can overshoot by what it writes between two checks, at disk speed, each file still within
``max_file_mb`` (measured: 62 MB written under a 32 MB cap, in 1 MiB files, to a page-cache-backed
``/tmp`` on a 2-core machine). Files it deleted while keeping them open are not seen (the kernel frees them when
its processes die, which the end of the call guarantees). Files written anywhere else (the host's
``/tmp``, ``/var/tmp``, ``/dev/shm``, the caller's home, any world-writable directory), or a
scratch dir the program moved away, are neither counted nor removed: this caps a runaway loop that
fills its working directory, not a program that sets out to fill the disk.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import stat
from collections.abc import Iterator

POLL_S = 0.05
"""Seconds between two size checks of a running program's scratch dir."""
ENTRY_BYTES = 4096
"""What a file or directory counts at least, whatever its size (one block of a typical disk)."""


def _entries(path: str) -> Iterator[os.DirEntry[str]]:
    """The entries of the directory ``path``. A non-root caller first opens a directory the program
    closed to itself (it runs as the caller then, so it could reopen it as well); root reads any."""
    try:
        listing = os.scandir(path)
    except PermissionError:
        if os.geteuid() == 0:
            raise
        os.chmod(path, 0o700)
        listing = os.scandir(path)
    with listing:
        yield from listing


def usage(top: str, stop_above: int) -> int:
    """Bytes the tree at ``top`` occupies (allocated blocks, at least ``ENTRY_BYTES`` per entry),
    symlinks not followed; counting stops as soon as the total is above ``stop_above``. A missing
    ``top`` (or one that is not a directory) is 0; a directory that stays unreadable counts as
    over the cap."""
    try:
        if not stat.S_ISDIR(os.lstat(top).st_mode):
            return 0
    except OSError:
        return 0
    total = 0
    pending = [top]
    while pending:
        try:
            for entry in _entries(pending.pop()):
                try:
                    info = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                total += max(info.st_blocks * 512, ENTRY_BYTES)
                if total > stop_above:
                    return total
                if stat.S_ISDIR(info.st_mode):
                    pending.append(entry.path)
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError:
            return stop_above + 1
    return total


async def watch(top: str, limit_bytes: int) -> int:
    """Return the usage of ``top`` once it is above ``limit_bytes``; until then, check every
    ``POLL_S`` (scans run in a worker thread, never on the event loop, and the pause grows to twice
    a scan's duration so a huge tree cannot keep a core busy). Runs until cancelled otherwise."""
    loop = asyncio.get_running_loop()
    while True:
        started = loop.time()
        used = await loop.run_in_executor(None, usage, top, limit_bytes)
        if used > limit_bytes:
            return used
        await asyncio.sleep(max(POLL_S, 2 * (loop.time() - started)))


def remove(top: str) -> None:
    """Delete the tree at ``top`` (a symlink there is left alone, never followed); never raises.
    A non-root caller then reopens directories the program closed (mode 000, or without write
    permission) and tries once more; whatever still cannot be removed stays."""
    shutil.rmtree(top, ignore_errors=True)
    if os.geteuid() == 0 or not os.path.isdir(top) or os.path.islink(top):
        return
    pending = [top]
    while pending:
        path = pending.pop()
        try:
            os.chmod(path, 0o700)
            with os.scandir(path) as entries:
                pending.extend(e.path for e in entries if e.is_dir(follow_symlinks=False))
        except OSError:
            continue
    shutil.rmtree(top, ignore_errors=True)
