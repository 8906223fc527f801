"""A sandbox: what each isolation mode protects against, and ``Sandbox``, one started sandbox.

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

``Sandbox`` is one started sandbox seen from the caller: the process spawned, its control socket,
the pipe its start-up errors go to and the program's two output pipes, all driven by the sandbox
service's loop (``pool.py``). It is the only code that touches a sandbox's descriptors and pids;
the service decides when sandboxes start and which call gets which. Processes are started with
``posix_spawn`` (the kernel's vfork path), so the large training process is never forked, and
watched through a pidfd (Linux 5.3+; a waiting thread otherwise). If something else in the process
reaps children with ``waitpid(-1)``, the sandbox's own exit status is lost; the supervisor's report
over the socket still counts.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import signal
import socket
import threading
from typing import Any, Callable

from astuner.tool import scratch
from astuner.tool.isolation import WorkerSpec, kill_uid
from astuner.tool.output import CappedBuffer
from astuner.tool.reap import kill_descendants

EXIT_GRACE_S = 1.0
"""How long to wait for a killed sandbox to exit."""
PIPE_GRACE_S = 0.5
"""How long to wait for the output pipes to close once the program is gone."""
_F_SETPIPE_SZ = 1031


class SandboxError(RuntimeError):
    """A sandbox could not be started or kept failing; never raised for what a program does."""


def _high_fd(fd: int) -> int:
    """``fd`` moved to 4 or above, so the spawn's dup2 onto 0-3 cannot clobber it."""
    if fd >= 4:
        return fd
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 4)
    os.close(fd)
    return moved


class Sandbox:
    """One started sandbox: the process spawned (bwrap, or the supervisor itself), its control
    socket, the pipe its start-up errors go to, and, once it is ready, the program's two output
    pipes (created by the supervisor and passed over the socket), all driven by the service loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, spec: WorkerSpec, on_gone: Callable[[Sandbox], None]) -> None:
        self.loop, self.spec, self._on_gone = loop, spec, on_gone
        self.info: dict[str, Any] = {}
        self.messages: dict[str, Any] = {}
        self.ready: asyncio.Future[dict] = loop.create_future()
        self.reported: asyncio.Future[None] = loop.create_future()
        self.exited: asyncio.Future[None] = loop.create_future()
        self.output_closed: asyncio.Future[None] = loop.create_future()
        self.log_closed: asyncio.Future[None] = loop.create_future()
        self.returncode: int | None = None
        self.log = CappedBuffer(1 << 14)
        self.buffers = {1: CappedBuffer(1 << 16), 2: CappedBuffer(1 << 16)}
        self._pending = b""
        self._fds: dict[str, int] = {}
        self._disposed = False
        ours, theirs = socket.socketpair()
        log_r, log_w = os.pipe()
        devnull = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        spawn_fds = [_high_fd(fd) for fd in (devnull, log_w, log_w, theirs.detach())]
        try:
            actions = [(os.POSIX_SPAWN_DUP2, fd, target) for target, fd in enumerate(spawn_fds)]
            self.pid = os.posix_spawn(spec.argv[0], spec.argv, spec.env, file_actions=actions, setsid=True)
        except BaseException:
            os.close(log_r)
            ours.close()
            raise
        finally:
            for fd in set(spawn_fds):
                os.close(fd)
        self.sock = ours
        self.sock.setblocking(False)
        self._watch("control", self.sock.fileno(), self._on_control)
        self._watch("log", log_r, lambda: self._on_pipe("log"))
        self._watch_exit()

    def _watch(self, name: str, fd: int, callback: Callable[[], None]) -> None:
        self._fds[name] = fd
        self.loop.add_reader(fd, callback)

    def _unwatch(self, name: str, close: bool = True) -> None:
        fd = self._fds.pop(name, None)
        if fd is None:
            return
        self.loop.remove_reader(fd)
        if close:
            os.close(fd)

    def _watch_exit(self) -> None:
        try:
            pidfd = os.pidfd_open(self.pid)
        except (AttributeError, OSError):
            threading.Thread(target=self._wait_blocking, daemon=True).start()
            return
        self._watch("pidfd", pidfd, self._on_exit)

    def _wait_blocking(self) -> None:
        try:
            _, status = os.waitpid(self.pid, 0)
        except ChildProcessError:
            status = None
        self.loop.call_soon_threadsafe(self._exited, status)

    def _on_exit(self) -> None:
        try:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:  # someone else reaped it; the supervisor's report still counts
            pid, status = self.pid, None
        if pid == 0:
            return
        self._unwatch("pidfd")
        self._exited(status)

    def _exited(self, status: int | None) -> None:
        self.returncode = os.waitstatus_to_exitcode(status) if status is not None else None
        if not self.exited.done():
            self.exited.set_result(None)
        self._on_gone(self)

    def _on_pipe(self, name: str) -> None:
        fd = self._fds[name]
        try:
            data = os.read(fd, 1 << 20)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            (self.log if name == "log" else self.buffers[1 if name == "stdout" else 2]).feed(data)
            return
        self._unwatch(name)
        if name == "log" and not self.log_closed.done():
            self.log_closed.set_result(None)
        if name != "log" and "stdout" not in self._fds and "stderr" not in self._fds and not self.output_closed.done():
            self.output_closed.set_result(None)

    def _on_control(self) -> None:
        try:
            data, fds, _, _ = socket.recv_fds(self.sock, 1 << 16, 2)
        except BlockingIOError:
            return
        except OSError:
            data, fds = b"", []
        if len(fds) == 2 and "stdout" not in self._fds:
            for name, fd in zip(("stdout", "stderr"), fds):
                os.set_blocking(fd, False)
                try:
                    fcntl.fcntl(fd, _F_SETPIPE_SZ, 1 << 20)  # fewer wake-ups for a flood of output
                except OSError:
                    pass
                self._watch(name, fd, lambda name=name: self._on_pipe(name))
        else:
            for fd in fds:
                os.close(fd)
        if not data:
            self._unwatch("control", close=False)
            return
        self._pending += data
        while b"\n" in self._pending:
            line, self._pending = self._pending.split(b"\n", 1)
            try:
                message = json.loads(line)
            except ValueError:
                continue
            self._handle(message)

    def _handle(self, message: dict) -> None:
        if "ready" in message and not self.ready.done():
            self.info = message["ready"]
            self.ready.set_result(self.info)
        elif "error" in message and not self.ready.done():
            self.ready.set_exception(SandboxError(f"{self.spec.mode} sandbox setup failed: {message['error']}"))
        else:
            self.messages.update(message)
            if "status" in message and not self.reported.done():
                self.reported.set_result(None)

    def startup_failure(self) -> str:
        log = self.log.text("log").strip()
        return f"{self.spec.mode} sandbox exited during start-up (status {self.returncode}): {log or 'no output'}"

    def capture(self, max_bytes: int) -> None:
        """Start capturing the program's output under its own cap."""
        self.buffers = {1: CappedBuffer(max_bytes), 2: CappedBuffer(max_bytes)}

    async def send(self, request: bytes) -> None:
        await self.loop.sock_sendall(self.sock, request)
        self.sock.shutdown(socket.SHUT_WR)

    def kill(self) -> None:
        """SIGKILL everything in the sandbox (idempotent). bwrap: the outer process; its
        ``--die-with-parent`` chain takes the PID namespace, and with it every process, down.
        process: the program's whole tree first, while the supervisor (a child subreaper) still
        adopts the orphans of each process killed (``reap.py``), then the supervisor."""
        if self.spec.mode == "process" and "child" in self.messages and not self.exited.done():
            kill_descendants(self.pid)
        if not self.exited.done():
            _signal(lambda: os.kill(self.pid, signal.SIGKILL))
        if self.spec.mode == "process":
            _signal(lambda: os.killpg(self.pid, signal.SIGKILL))
            child = self.messages.get("child")
            if child and not self.info.get("dedicated"):
                _signal(lambda: os.killpg(child, signal.SIGKILL))
        if self.spec.uid is not None:
            kill_uid(self.spec.uid)

    def dispose(self, abnormal: bool) -> None:
        """Release the descriptors (the exit is still reaped when it comes). After an abnormal end
        (timeout, cancellation, scratch cap, supervisor died) kill everything first. A scratch dir
        on the host is removed in every case: the supervisor removes it after a normal end, but
        not after an abnormal one, nor what a program closed to it (``scratch.remove``)."""
        if self._disposed:
            return
        self._disposed = True
        if abnormal:
            self.kill()
        for name in [n for n in self._fds if n != "pidfd"]:
            self._unwatch(name, close=name != "control")
        self.sock.close()
        if self.info.get("scratch_on_host"):
            scratch.remove(self.spec.scratch)

    def abandon(self) -> None:
        """In a forked child: close our copies of the descriptors, touch nothing else."""
        for name, fd in self._fds.items():
            if name != "control":
                try:
                    os.close(fd)
                except OSError:
                    pass
        self.sock.close()


def _signal(send: Callable[[], None]) -> None:
    try:
        send()
    except (ProcessLookupError, PermissionError):
        pass
