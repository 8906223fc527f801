"""Run one piece of model-written Python in a sandbox, with limits, and say how it ended.

Why: during RL the policy writes code that runs on the training host thousands of times, and a
policy that learns to hang, flood, fork or snoop must cost one tool call, not the run or the
host. Each call runs in a fresh process of a pre-started sandbox (``pool.py``, ``worker.py``);
the mode is ``astuner.python_tool.isolation`` (``auto``: ``bwrap`` when bubblewrap can build a
sandbox here, else ``process`` with a one-time warning naming what is not protected).

Both modes (POSIX, Linux):

* Time: wall-clock timeout measured from the moment the program is handed over; on expiry
  everything the program started is SIGKILLed and the call returns within about a second even if
  a descendant holds the output pipes. ``RLIMIT_CPU`` (timeout + 1 s) backs it up.
* Memory: ``RLIMIT_AS`` of ``memory_mb`` per process; allocations beyond it fail with
  MemoryError (or kill the process), reported by a marker line on stderr.
* Output: stdout and stderr are drained concurrently (the program never blocks on a full pipe)
  and each keeps at most ``max_output_chars`` bytes (head and tail; the caller never holds more
  than about twice that plus one pipe read, however much arrives); a cut stream carries a
  ``[astuner: <stream> truncated: N of M bytes cut, ...]`` line, so the tool's reply says so.
  Invalid UTF-8 is replaced, never an error.
* Files and descriptors: ``RLIMIT_FSIZE`` of ``max_file_mb``, ``RLIMIT_NOFILE`` of
  ``max_open_files``, no core dumps; the program inherits no descriptor but 0-2; stdin is
  ``/dev/null``; ``no_new_privs`` is set, so setuid binaries grant nothing.
* Scratch dir: the working directory, ``HOME`` and ``TMPDIR``; at most ``scratch_mb`` (a tmpfs of
  that size, or, on the host disk, a size check that kills the program: see ``process`` below),
  removed after the call, also when the program closed its directories to itself.
* Environment: an allow-list (PATH, LANG, LC_ALL, UTF-8 settings, HOME and TMPDIR pointing at the
  scratch dir, one BLAS/OpenMP thread, two malloc arenas); the caller's secrets are not passed.
* Fresh process: every call gets a supervisor interpreter that never ran anything else, and the
  program runs in a fork of it, in the scratch dir, under the same flags as
  ``python -I -u -X utf8 main.py`` (no user site-packages, no PYTHON* variables, no script dir on
  ``sys.path``); ``worker.py`` says what a fork does not reset.
* Root callers: the sandbox runs as a dedicated uid of its own (``isolation.UidLeases``), so
  ``RLIMIT_NPROC`` (``max_processes`` on top of the sandbox's own processes) binds, the cleanup
  ``kill(-1)`` reaches only the sandbox, and root-owned files (and root's home) are out of reach.
  (``process`` mode keeps the caller's uid instead, and says so in its warning, when it could not
  build a mount namespace and the interpreter sits behind a directory closed to other users.)
* Returning: when the call returns, every process of the program is gone; the sandbox's own
  supervisor and bwrap may take a few more milliseconds to exit (the kernel tears namespaces down)
  and are reaped in the background. In ``process`` mode a program stopped early (timeout,
  scratch cap, cancellation) has its whole process tree killed before its supervisor
  (``reap.py``); under bwrap the PID namespace takes the tree down with the supervisor.

``bwrap`` adds (bubblewrap namespaces; the supervisor is pid 2 of its own PID namespace):

* No network: an own network namespace with only a loopback device.
* Read-only host: ``/`` is bound read-only; ``/tmp``, ``/var/tmp`` and ``/dev/shm`` are private
  tmpfs of ``scratch_mb`` (scratch dir inside; a disk fill ends at that size); the caller's home
  and any directory on the way to the interpreter that others may not traverse are empty tmpfs,
  with the interpreter's own directories bound back read-only.
* Processes: own PID, IPC and UTS namespaces; host processes are invisible and unreachable, and
  when the supervisor exits or is killed, the kernel kills every process left in the namespace
  (``setsid`` daemons included). ``--die-with-parent`` and a parent-death signal end it with the
  caller.
* Devices: a minimal ``/dev`` (null, zero, full, random, urandom, tty, pts, shm): no GPU, no disks.

``process`` (the fallback when bwrap is missing or cannot build namespaces):

* Network: an own network namespace (loopback only) where the kernel allows one: for root (unless
  a container withholds CAP_SYS_ADMIN), for other users only with unprivileged user namespaces;
  otherwise NOT protected.
* Files: in the same cases, a private mount namespace with the same tmpfs covers as bwrap
  (temporary dirs, the caller's home, closed directories on the way to the interpreter); the rest
  of the host is NOT read-only: a dedicated uid can still write world-writable places (e.g.
  ``/var/lock``), and a non-root caller's program can read and write all the caller can (the
  covers do not help there: ``/proc/<caller pid>/root`` shows the caller's view).
* Scratch without a mount namespace (a container withholding CAP_SYS_ADMIN, as GPU containers
  often do; a non-root caller without user namespaces): the scratch dir is a directory in the
  host's temporary dir, and the caller polls its size every ``scratch.POLL_S`` (every entry counts
  at least 4 KiB, so empty files count too) and kills the program once it is over ``scratch_mb``:
  a soft cap that a fast writer overshoots by what it writes between two checks (tens of MB on a
  page-cache-backed disk). Files written outside the scratch dir (the host's ``/tmp``, ``/var/tmp``,
  ``/dev/shm``, the caller's home, world-writable places), or a scratch dir moved away, are NOT
  capped in total (only ``max_file_mb`` each) and NOT removed; ``scratch.py`` has the details.
* Processes: NOT isolated: host processes and their command lines are visible. With a dedicated
  uid, leftovers (``setsid`` daemons too) are killed by uid; in every case the supervisor is a
  child subreaper (``PR_SET_CHILD_SUBREAPER``), so orphans of the program stay its descendants
  and are killed after the call whatever session or group they moved to (without a dedicated uid
  this is the net that catches them), unless the program kills its supervisor first: its orphans
  then go to init, out of reach without a dedicated uid. Without a dedicated uid (non-root
  callers, and root callers whose interpreter sits behind a closed directory when no mount
  namespace could be built) the program can signal the caller and write to the caller's open
  files (``/proc/<caller pid>/fd``: its log, uncapped), and ``RLIMIT_NPROC`` counts all of the
  user's processes unless a user namespace was obtained (root is not held to it at all).
* Devices: the host's ``/dev``, GPUs included, with the uid's permissions.

NOT protected in either mode: the kernel's syscall interface (no seccomp filter; in root-run
bwrap the program may create user namespaces of its own), CPU share (no nice or cgroup quota),
world-readable host files (bwrap binds them read-only, it does not hide them), and side
channels. A non-root caller's bwrap sandbox runs as the caller's user, so it reads what that
user can read outside the covered directories. tmpfs pages of the scratch space are RAM, not
counted in ``RLIMIT_AS``, and a tmpfs caps bytes, not files: a flood of empty files there costs
kernel memory, not scratch space, until the timeout.
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
