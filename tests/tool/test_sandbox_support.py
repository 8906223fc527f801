"""Shared helpers for the sandbox tests (no tests here): running code, parsing the tool's text,
and finding processes a sandboxed program left behind.

Pids printed inside a bwrap sandbox are its own PID namespace's, meaningless on the host, so
leftovers are found by name instead: ``tag_code`` makes a program rename itself (``prctl``,
inherited by its forks), exec'd children carry the tag in their command line, and sandboxes of a
root caller are also found by their dedicated uid.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import shutil
import time

import pytest

from astuner.tool import ToolLimits, execute_python_code, use_limits
from astuner.tool.run import RunResult, run_python

pytestmark = pytest.mark.integration

SLACK_S = 1.0
"""A call must return within its timeout plus this (the issue's bound)."""

MODES = [
    pytest.param("bwrap", marks=pytest.mark.skipif(shutil.which("bwrap") is None, reason="bwrap (bubblewrap) is not installed")),
    "process",
]


def new_tag() -> str:
    """A process name unique to one test (comm holds 15 bytes)."""
    return "ast" + secrets.token_hex(4)


def tag_code(tag: str) -> str:
    """Code that renames the running process to ``tag``; forks inherit the name."""
    return f"import ctypes\nctypes.CDLL(None).prctl(15, {tag.encode()!r}, 0, 0, 0)\n"


def run_tool(code: str, limits: ToolLimits | None = None, **kwargs) -> tuple[str, float]:
    """The tool's text for ``code`` and the seconds it took."""
    limits = limits or ToolLimits(timeout_s=2.0)

    async def go():
        with use_limits(limits):
            return await execute_python_code(code, **kwargs)

    start = time.monotonic()
    response = asyncio.run(go())
    elapsed = time.monotonic() - start
    assert len(response.content) == 1 and response.content[0]["type"] == "text"
    return response.content[0]["text"], elapsed


def run_sandbox(code: str, limits: ToolLimits) -> tuple[RunResult, float]:
    """``run_python`` with the limits' own timeout, and the seconds it took."""
    start = time.monotonic()
    result = asyncio.run(run_python(code, limits.timeout_s, limits))
    return result, time.monotonic() - start


def parse(text: str) -> tuple[int, str, str]:
    m = re.fullmatch(r"<returncode>(-?\d+)</returncode><stdout>(.*)</stdout><stderr>(.*)</stderr>", text, re.S)
    assert m, text[:500]
    return int(m.group(1)), m.group(2), m.group(3)


def _status(pid: str) -> dict[str, str]:
    with open(f"/proc/{pid}/status") as f:
        return dict(line.split(":", 1) for line in f.read().splitlines() if ":" in line)


def live_processes(tag: str | None = None, uid: int | None = None) -> list[int]:
    """Live (non-zombie) host processes named ``tag`` or with ``tag`` in their command line, or
    running as ``uid``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            status = _status(entry)
            if status["State"].split()[0] in ("Z", "X"):
                continue
            hit = uid is not None and uid in {int(u) for u in status["Uid"].split()[:3]}
            if tag is not None and not hit:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    hit = status["Name"].strip() == tag or tag.encode() in f.read()
        except (OSError, KeyError, ValueError):
            continue
        if hit:
            found.append(int(entry))
    return found


def pid_alive(pid: int) -> bool:
    try:
        return _status(str(pid))["State"].split()[0] not in ("Z", "X")
    except (OSError, KeyError):
        return False


def assert_gone(tag: str | None = None, uid: int | None = None, pids: tuple[int, ...] = (), within_s: float = 1.5) -> None:
    """Nothing matching ``tag``/``uid`` and none of ``pids`` is alive, polling up to ``within_s``
    (a sandbox's own exit waits for the kernel to tear its namespaces down)."""
    deadline = time.monotonic() + within_s
    while True:
        left = live_processes(tag, uid) if (tag or uid is not None) else []
        left += [p for p in pids if pid_alive(p)]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert not left, f"processes survived: {left}"


def assert_no_survivors(result: RunResult, tag: str | None = None) -> None:
    """No process of this run is alive: tagged ones, its dedicated uid's, its outer process."""
    assert_gone(tag=tag, uid=result.uid, pids=(result.pid,))
