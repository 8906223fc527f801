"""Run one piece of model-written Python in a sandbox, with limits, and say how it ended.

``run_python`` hands the program to the sandbox service (``pool.py``), which runs it in a fresh
pre-started sandbox (``sandbox.py``, whose docstring lists what each isolation mode protects and
what it does not), and turns the supervisor's report into a ``RunResult``: the exit code, the
capped output, and marker lines that name the limit which stopped the program when that can be
told (``limit_notes``). The mode is ``astuner.python_tool.isolation`` (``auto``: ``bwrap`` when
bubblewrap can build a sandbox here, else ``process`` with a one-time warning naming what is not
protected).

Not guaranteed: which limit stopped a program is read from its exit signal and the end of its
stderr, so a program that prints a ``MemoryError`` line of its own gets the memory note.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import signal
from dataclasses import dataclass, field

from astuner.tool import pool
from astuner.tool.limits import ToolLimits, require_supported, rlimits


@dataclass
class RunResult:
    """What one sandboxed run produced. ``returncode`` is -1 on timeout or when the supervisor
    died without reporting, else the program's exit code (negative: killed by that signal);
    ``notes`` are marker lines for stderr (timeouts, limits hit), kept apart so truncation never
    cuts them. ``pid`` is the host pid of the sandbox's outer process (bwrap or the supervisor);
    ``uid`` its dedicated uid, if any; ``isolation`` the mode that ran it."""

    returncode: int
    stdout: str
    stderr: str
    timed_out: bool
    notes: list[str]
    pid: int
    isolation: str = "process"
    uid: int | None = None
    info: dict = field(default_factory=dict)


def _last_line(text: str) -> str:
    lines = text.rstrip("\n").rsplit("\n", 1)
    return lines[-1] if lines else ""


def limit_notes(returncode: int, stderr: str, limits: ToolLimits, cpu_s: int) -> list[str]:
    """Marker lines that say which limit stopped the program, when it can be told."""
    if returncode == 0:
        return []
    if returncode == -signal.SIGXCPU:
        return [f"astuner: killed: CPU time limit ({cpu_s} s) exceeded"]
    if returncode == -signal.SIGXFSZ:
        return [f"astuner: killed: file size limit ({limits.max_file_mb} MB) exceeded"]
    last = _last_line(stderr)
    if last.startswith("MemoryError") or "MemoryError" in stderr[-2000:]:
        return [f"astuner: memory limit ({limits.memory_mb} MB) exceeded"]
    if "[Errno 27] File too large" in last:
        return [f"astuner: file size limit ({limits.max_file_mb} MB) exceeded"]
    if "[Errno 28] No space left on device" in last:
        return [f"astuner: scratch space limit ({limits.scratch_mb} MB) exceeded"]
    if "can't start new thread" in last or "[Errno 11] Resource temporarily unavailable" in last:
        return [f"astuner: process limit ({limits.max_processes} more processes or threads) reached"]
    if "[Errno 24] Too many open files" in last:
        return [f"astuner: open file limit ({limits.max_open_files}) reached"]
    if returncode in (-signal.SIGSEGV, -signal.SIGABRT, -signal.SIGBUS, -signal.SIGKILL):
        name = signal.Signals(-returncode).name
        return [f"astuner: killed by {name} (the memory limit is {limits.memory_mb} MB)"]
    return []


def _to_result(outcome: pool.Outcome, timeout_s: float, limits: ToolLimits) -> RunResult:
    if outcome.timed_out:
        returncode = -1
        notes = [f"TimeoutError: The code execution exceeded the timeout of {timeout_s:g} seconds."]
    elif outcome.scratch_full:
        returncode = -signal.SIGKILL
        notes = [f"astuner: killed: scratch space limit ({limits.scratch_mb} MB) exceeded"]
    elif outcome.status is None:
        returncode = -1
        notes = ["astuner: the sandbox's supervisor died before reporting (killed by the code?); "
                 "exit status unknown, every process of the sandbox was killed"]
    else:
        returncode = outcome.status
        notes = limit_notes(returncode, outcome.stderr, limits, math.ceil(timeout_s) + 1)
    return RunResult(returncode, outcome.stdout, outcome.stderr, outcome.timed_out, notes, outcome.pid,
                     outcome.mode, outcome.uid, outcome.info)


async def run_python(code: str, timeout_s: float, limits: ToolLimits) -> RunResult:
    """Run ``code`` as a script in a fresh sandbox under ``limits``, from any event loop or thread.

    Never raises for what the code does; raises ``pool.SandboxError`` (a RuntimeError) when no
    sandbox can be started, e.g. ``isolation="bwrap"`` where the kernel refuses namespaces.
    Cancelling the awaiting task kills the sandbox before the cancellation propagates (waiting at
    most a few seconds for that)."""
    require_supported(limits)
    header = json.dumps({"rlimits": sorted(rlimits(limits, timeout_s).items())}).encode() + b"\n"
    request = header + code.encode("utf-8", errors="surrogatepass")
    svc = pool.service()
    job = svc.start(lambda: svc.execute(request, timeout_s, limits.max_output_chars, limits.isolation,
                                        limits.scratch_mb, limits.pool_size))
    try:
        outcome = await asyncio.wrap_future(job.result)
    except asyncio.CancelledError:
        svc.cancel(job)
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(asyncio.wrap_future(job.finished), 5.0)
        raise
    return _to_result(outcome, timeout_s, limits)


def shutdown() -> None:
    """Kill every pooled sandbox and stop the pool's thread (also done at interpreter exit)."""
    pool.shutdown()
