"""Run one piece of model-written Python out of process, with limits ("process" isolation level).

Why: during RL the policy writes code that runs on the training host thousands of times, and a
policy that learns to hang, flood or fork must cost one tool call, not the run.

What IS protected (POSIX only; uses ``resource`` and process groups):

* Time: wall-clock timeout; on expiry the whole process group is SIGKILLed and the call returns
  within about a second even if a descendant still holds the output pipes. A CPU-time rlimit
  backs this up.
* Memory: ``RLIMIT_AS`` (address space) of ``memory_mb``; allocations beyond it fail with
  MemoryError (or kill the child), reported by a marker line on stderr.
* Output: stdout and stderr are drained concurrently (the child never blocks on a full pipe) and
  each keeps at most ``max_output_chars`` (head and tail, with a note of how much was cut).
* Processes: the child leads its own process group; every process still in that group when the
  child exits or times out is SIGKILLed. ``RLIMIT_NPROC`` allows ``max_processes`` more processes
  (threads count) than the user already runs (not enforced for root, which the kernel exempts).
* Files: ``RLIMIT_FSIZE`` caps any file written at ``max_file_mb``; core dumps are off.
* Environment: the child gets an allow-list (PATH, LANG, LC_ALL, UTF-8 settings, HOME and TMPDIR
  pointing at its scratch dir, one BLAS/OpenMP thread), so API keys and tokens in the parent's
  environment are not seen.
* Working directory: a fresh scratch dir, removed afterwards; stdin is /dev/null; the
  interpreter runs isolated (``-I``: no user site-packages, no PYTHON* variables, no script dir on
  ``sys.path``).

What is NOT protected:

* Network: the child can open sockets and reach anything the host can.
* Filesystem: outside the scratch dir it can read and write everything the user can, including
  the code, checkpoints, ``~/.ssh`` and credential files (only the *environment* is scrubbed).
* Escape from the group: a descendant that calls ``setsid()`` leaves the process group and
  survives the kill; it only loses the pipes.
* Other users' resources: shared memory, the GPU, disk space via many small files, and the CPU
  (no nice/cgroup quota), and ``RLIMIT_NPROC`` counts all of the user's processes.
* ``preexec_fn`` forks the parent: in a heavily multi-threaded parent this is the CPython-documented
  (rare) deadlock risk, and forking a process with a large resident set costs time.

A namespace sandbox (bubblewrap: no network, read-only host) is ``isolation="bwrap"``, not
implemented yet.
"""

from __future__ import annotations

import asyncio
import math
import os
import resource
import shutil
import signal
import sys
import tempfile
from dataclasses import dataclass

from astuner.tool.limits import ToolLimits, require_supported

_PIPE_GRACE_S = 0.5
"""How long to wait for the pipes to close after the process group was killed."""

_EXIT_GRACE_S = 1.0
"""How long to wait for the killed child to be reaped before giving up on its exit status."""

_ENV_PASSTHROUGH = ("PATH", "LANG", "LC_ALL")
_SINGLE_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


@dataclass
class RunResult:
    """What one sandboxed run produced. ``returncode`` is -1 on timeout; ``notes`` are marker lines
    for stderr (timeouts, limits hit), kept apart so truncation never cuts them."""

    returncode: int
    stdout: str
    stderr: str
    timed_out: bool
    notes: list[str]
    pid: int


class _CappedBuffer:
    """Keeps the first and last bytes of a stream, counting what was dropped in between."""

    def __init__(self, max_bytes: int) -> None:
        self.head_limit = max_bytes // 2
        self.tail_limit = max_bytes - self.head_limit
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def feed(self, data: bytes) -> None:
        self.total += len(data)
        room = self.head_limit - len(self.head)
        if room > 0:
            self.head += data[:room]
            data = data[room:]
        if data:
            self.tail += data
            if len(self.tail) > 2 * self.tail_limit:
                del self.tail[: len(self.tail) - self.tail_limit]

    def text(self, stream_name: str) -> str:
        tail = bytes(self.tail[len(self.tail) - self.tail_limit :]) if self.tail_limit else b""
        kept = len(self.head) + len(tail)
        head_text = self.head.decode("utf-8", errors="replace")
        tail_text = tail.decode("utf-8", errors="replace")
        if kept >= self.total:
            return head_text + tail_text
        cut = self.total - kept
        return (
            f"{head_text}\n[astuner: {stream_name} truncated: {cut} of {self.total} bytes cut, "
            f"first {len(self.head)} and last {len(tail)} kept]\n{tail_text}"
        )


class _Collector(asyncio.SubprocessProtocol):
    """Drains both pipes into capped buffers and signals exit and end-of-output."""

    def __init__(self, max_bytes: int, loop: asyncio.AbstractEventLoop) -> None:
        self.buffers = {1: _CappedBuffer(max_bytes), 2: _CappedBuffer(max_bytes)}
        self.exited: asyncio.Future[None] = loop.create_future()
        self.pipes_closed: asyncio.Future[None] = loop.create_future()
        self._open = {1, 2}

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        self.buffers[fd].feed(data)

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        self._open.discard(fd)
        if not self._open and not self.pipes_closed.done():
            self.pipes_closed.set_result(None)

    def process_exited(self) -> None:
        if not self.exited.done():
            self.exited.set_result(None)


def child_env(scratch: str) -> dict[str, str]:
    """The allow-listed environment of the child: nothing secret, UTF-8, home in the scratch dir."""
    env = {name: os.environ[name] for name in _ENV_PASSTHROUGH if name in os.environ}
    env.setdefault("PATH", os.defpath)
    env.update(PYTHONIOENCODING="utf-8", PYTHONUTF8="1", HOME=scratch, TMPDIR=scratch)
    # One BLAS/OpenMP thread: on many-core hosts each pool thread reserves stack address space,
    # which would eat the RLIMIT_AS budget before the code allocates anything.
    env.update({name: "1" for name in _SINGLE_THREAD_VARS})
    return env


def _user_task_count() -> int:
    """Tasks (threads included) owned by this user now: RLIMIT_NPROC counts all of them, not
    just our children."""
    uid = os.getuid()
    count = 0
    try:
        entries = os.listdir("/proc")
    except OSError:
        return 0
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            if os.stat(f"/proc/{entry}").st_uid != uid:
                continue
            with open(f"/proc/{entry}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
            count += int(fields[17])  # field 20 of proc(5): num_threads
        except (OSError, IndexError, ValueError):
            continue
    return count


def _rlimits(limits: ToolLimits, timeout_s: float) -> list[tuple[int, int]]:
    """(resource, soft limit) pairs for the child; a soft limit never exceeds the current hard one."""
    cpu_s = math.ceil(timeout_s) + 1
    wanted = [
        (resource.RLIMIT_AS, limits.memory_mb * 1024 * 1024),
        (resource.RLIMIT_CPU, cpu_s),
        (resource.RLIMIT_FSIZE, limits.max_file_mb * 1024 * 1024),
        (resource.RLIMIT_CORE, 0),
    ]
    if os.getuid() != 0:
        wanted.append((resource.RLIMIT_NPROC, _user_task_count() + limits.max_processes))
    out = []
    for res, soft in wanted:
        _, hard = resource.getrlimit(res)
        if hard != resource.RLIM_INFINITY:
            soft = min(soft, hard)
        out.append((res, soft))
    return out


def _make_preexec(rlimits: list[tuple[int, int]]):
    """A preexec_fn that only calls setrlimit (kept minimal: it runs between fork and exec)."""

    def preexec() -> None:
        for res, soft in rlimits:
            _, hard = resource.getrlimit(res)
            # CPU: hard one second above soft, so SIGXCPU comes first and SIGKILL backs it up.
            new_hard = soft + 1 if res == resource.RLIMIT_CPU else soft
            if hard != resource.RLIM_INFINITY:
                new_hard = min(new_hard, hard)
            resource.setrlimit(res, (min(soft, new_hard), new_hard))

    return preexec


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _limit_notes(returncode: int, stderr: str, limits: ToolLimits, cpu_s: int) -> list[str]:
    """Marker lines that say which limit stopped the child, when it can be told."""
    if returncode == -signal.SIGXCPU:
        return [f"astuner: killed: CPU time limit ({cpu_s} s) exceeded"]
    if returncode == -signal.SIGXFSZ:
        return [f"astuner: killed: file size limit ({limits.max_file_mb} MB) exceeded"]
    if returncode != 0 and "MemoryError" in stderr[-2000:]:
        return [f"astuner: memory limit ({limits.memory_mb} MB) exceeded"]
    if returncode in (-signal.SIGSEGV, -signal.SIGABRT, -signal.SIGBUS, -signal.SIGKILL):
        name = signal.Signals(-returncode).name
        return [f"astuner: killed by {name} (the memory limit is {limits.memory_mb} MB)"]
    return []


async def run_python(code: str, timeout_s: float, limits: ToolLimits) -> RunResult:
    """Run ``code`` as a script in a fresh scratch dir under ``limits``; never raises for what the
    code does (only for a sandbox that cannot start, e.g. an unsupported isolation level)."""
    require_supported(limits)
    loop = asyncio.get_running_loop()
    scratch = tempfile.mkdtemp(prefix="astuner_py_")
    try:
        script = os.path.join(scratch, "main.py")
        with open(script, "w", encoding="utf-8", errors="surrogatepass") as f:
            f.write(code)
        rlimits = _rlimits(limits, timeout_s)
        transport, collector = await loop.subprocess_exec(
            lambda: _Collector(limits.max_output_chars, loop),
            sys.executable, "-I", "-u", "-X", "utf8", script,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=scratch,
            env=child_env(scratch),
            start_new_session=True,
            preexec_fn=_make_preexec(rlimits),
        )
        pid = transport.get_pid()
        timed_out = False
        try:
            try:
                await asyncio.wait_for(asyncio.shield(collector.exited), timeout_s)
            except asyncio.TimeoutError:
                timed_out = True
            # The child is the group leader (start_new_session), so its pid is the group id; kill
            # whatever is left in the group, whether the child finished or timed out.
            _kill_group(pid)
            await asyncio.wait({collector.exited}, timeout=_EXIT_GRACE_S)
            await asyncio.wait({collector.pipes_closed}, timeout=_PIPE_GRACE_S)
            returncode = transport.get_returncode()
        finally:
            _kill_group(pid)  # again, for a caller that cancelled us mid-run
            transport.close()
        stdout = collector.buffers[1].text("stdout")
        stderr = collector.buffers[2].text("stderr")
        cpu_s = math.ceil(timeout_s) + 1
        if timed_out:
            notes = [f"TimeoutError: The code execution exceeded the timeout of {timeout_s:g} seconds."]
            returncode = -1
        else:
            notes = _limit_notes(returncode if returncode is not None else -1, stderr, limits, cpu_s)
            if returncode is None:
                returncode = -1
        return RunResult(returncode, stdout, stderr, timed_out, notes, pid)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
