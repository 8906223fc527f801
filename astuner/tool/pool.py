"""The sandbox service: a background thread and event loop that own every sandbox of the process.

Why a thread of its own: the sandboxes' pipes and process handles must belong to one event loop
that lives as long as the service, while callers come from any loop or thread (the debug backbone
runs one loop; tests create one per call). Callers hand a job to this loop and await its result
through a ``concurrent.futures.Future``; cancelling the caller kills the job's sandbox. On the loop,
one warm ``Pool`` per kind of sandbox (``warm.py``) keeps sandboxes started ahead of time; each is
started with ``posix_spawn`` (the kernel's vfork path), so the large training process is never
forked.

Lifecycle: the service starts on first use; ``shutdown()`` (also registered with ``atexit``)
kills every sandbox and stops the thread, and a later call starts a fresh service. A sandbox that
died while idle is discarded when taken, and one that dies before taking its program is replaced
(up to three tries). In a process forked from the caller, the service is dropped, not inherited.

Not guaranteed: a parent killed with SIGKILL cannot run ``atexit``; its sandboxes then die through
the parent-death signal (and bwrap's ``--die-with-parent``), not through ``shutdown()``.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import os
import threading
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Coroutine

from astuner.tool import scratch
from astuner.tool.isolation import UidLeases, bwrap_binary, gaps, kill_uid, protections, worker_spec
from astuner.tool.sandbox import EXIT_GRACE_S, PIPE_GRACE_S, Sandbox, SandboxError
# ``Pool``, its constants and ``_alive`` live in warm.py; they are re-exported for callers of this module.
from astuner.tool.warm import MAX_STARTING as MAX_STARTING
from astuner.tool.warm import READY_TIMEOUT_S as READY_TIMEOUT_S
from astuner.tool.warm import Pool
from astuner.tool.warm import alive as _alive  # noqa: F401


@dataclass
class Outcome:
    """What one program did, as the service saw it. ``status`` is the program's exit code as
    ``os.waitstatus_to_exitcode`` gives it, or None when the supervisor did not report one;
    ``scratch_full`` says the program was killed for a scratch dir on the host over its cap."""

    status: int | None
    stdout: str
    stderr: str
    timed_out: bool
    pid: int
    mode: str
    uid: int | None
    info: dict = field(default_factory=dict)
    cpu_s: float | None = None
    maxrss_kb: int | None = None
    scratch_full: bool = False


class Job:
    """One program handed to the service: its result, and when its sandbox is cleaned up."""

    def __init__(self) -> None:
        self.result: concurrent.futures.Future[Outcome] = concurrent.futures.Future()
        self.finished: concurrent.futures.Future[None] = concurrent.futures.Future()
        self.task: asyncio.Task | None = None
        self.cancelled = False


class Service:
    """The thread, its event loop, the pools, and the bookkeeping of every sandbox."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.pools: dict[tuple[str, int], Pool] = {}
        self.boxes: set[Sandbox] = set()
        self.leases = UidLeases() if os.getuid() == 0 else None
        self.bwrap_status: tuple[bool, str] | None = None
        self.fallback_reason: str | None = None
        self.warned = False
        self.closed = False
        self._probe_lock = asyncio.Lock()
        self._thread = threading.Thread(target=self._main, name="astuner-sandbox", daemon=True)
        self._thread.start()

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    # ---- called from any thread -------------------------------------------------------------

    def start(self, make: Callable[[], Coroutine[Any, Any, Outcome]]) -> Job:
        job = Job()

        def begin() -> None:
            if job.cancelled:
                job.finished.set_result(None)
                return
            job.task = self.loop.create_task(make())
            job.task.add_done_callback(lambda task: self._finish(job, task))

        self.loop.call_soon_threadsafe(begin)
        return job

    def cancel(self, job: Job) -> None:
        def stop() -> None:
            if job.task is None:
                job.cancelled = True
            else:
                job.task.cancel()

        self.loop.call_soon_threadsafe(stop)

    def close(self, timeout_s: float = 5.0) -> None:
        """Kill every sandbox, stop the loop and the thread (idempotent)."""
        if self.closed or self.loop.is_closed():
            return
        try:
            asyncio.run_coroutine_threadsafe(self._close(), self.loop).result(timeout_s)
        except Exception:
            pass
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout_s)
        if not self._thread.is_alive():
            self.loop.close()

    def abandon(self) -> None:
        """In a forked child: drop everything inherited without touching the parent's sandboxes."""
        self.closed = True
        for box in list(self.boxes):
            box.abandon()
        if self.leases is not None:
            self.leases.forget()

    # ---- on the loop ---------------------------------------------------------------------

    def _finish(self, job: Job, task: asyncio.Task) -> None:
        try:
            if task.cancelled():
                job.result.cancel()
            elif task.exception() is not None:
                job.result.set_exception(task.exception())
            else:
                job.result.set_result(task.result())
        except concurrent.futures.InvalidStateError:
            pass  # the caller cancelled first
        job.finished.set_result(None)

    async def _close(self) -> None:
        self.closed = True
        current = asyncio.current_task()
        tasks = [t for t in asyncio.all_tasks(self.loop) if t is not current]
        for task in tasks:
            task.cancel()
        boxes = list(self.boxes | {box for p in self.pools.values() for box in p.idle})
        for p in self.pools.values():
            p.idle.clear()
        for box in boxes:
            box.kill()
        if tasks:
            await asyncio.wait(tasks, timeout=EXIT_GRACE_S)
        pending = [box.exited for box in boxes if not box.exited.done()]
        if pending:
            await asyncio.wait(pending, timeout=EXIT_GRACE_S)
        for box in boxes:
            box.dispose(abnormal=True)

    def new_sandbox(self, mode: str, scratch_mb: int) -> Sandbox:
        if self.closed:
            raise SandboxError("the sandbox service is shut down")
        uid = self.leases.acquire() if self.leases is not None else None
        try:
            box = Sandbox(self.loop, worker_spec(mode, scratch_mb, uid), self._gone)
        except BaseException:
            if uid is not None:
                self.leases.release(uid)
            raise
        self.boxes.add(box)
        return box

    def _gone(self, box: Sandbox) -> None:
        """The spawned process exited: its uid may go to a new sandbox once nothing runs as it."""
        if box.spec.uid is not None and self.leases is not None:
            if box.spec.mode == "process" and "status" not in box.messages:
                kill_uid(box.spec.uid)
            self.leases.release(box.spec.uid)
        self.boxes.discard(box)

    def pool(self, mode: str, scratch_mb: int) -> Pool:
        key = (mode, scratch_mb)
        if key not in self.pools:
            self.pools[key] = Pool(self, mode, scratch_mb)
        return self.pools[key]

    def sandbox_ready(self, mode: str, info: dict) -> None:
        """The one-time warning, when the first fallback sandbox tells what it obtained."""
        if mode != "process" or self.warned:
            return
        self.warned = True
        why = f"bubblewrap is unavailable ({self.fallback_reason})" if self.fallback_reason else "isolation='process'"
        warnings.warn(
            f"astuner python tool: model code runs in the 'process' fallback sandbox because {why}. "
            f"Protected: {'; '.join(protections(info))}. NOT protected: {'; '.join(gaps(mode, info))}. "
            "Install bubblewrap for namespace isolation (docs/sandbox.md).",
            RuntimeWarning,
            stacklevel=2,
        )

    async def resolve(self, isolation: str, scratch_mb: int) -> str:
        """The mode a call with ``isolation`` runs in; the first bwrap sandbox doubles as the probe."""
        if isolation == "process":
            return "process"
        async with self._probe_lock:
            if self.bwrap_status is None:
                self.bwrap_status = await self._probe_bwrap(scratch_mb)
        ok, reason = self.bwrap_status
        if ok:
            return "bwrap"
        if isolation == "bwrap":
            raise SandboxError(f"python_tool.isolation='bwrap' but bubblewrap cannot build a sandbox here: {reason}")
        self.fallback_reason = reason
        return "process"

    async def _probe_bwrap(self, scratch_mb: int) -> tuple[bool, str]:
        if bwrap_binary() is None:
            return False, "the bwrap binary is not on PATH"
        pool = self.pool("bwrap", scratch_mb)
        try:
            box = await pool.start_one()
        except SandboxError as exc:
            return False, str(exc)
        pool.offer(box)
        return True, ""

    async def execute(self, request: bytes, timeout_s: float, max_output_bytes: int, isolation: str,
                      scratch_mb: int, pool_size: int) -> Outcome:
        """Run one program (``request``: header line + source) in a fresh sandbox."""
        mode = await self.resolve(isolation, scratch_mb)
        pool = self.pool(mode, scratch_mb)
        for _ in range(3):
            box = await pool.acquire(pool_size)
            outcome = None
            try:
                outcome = await self._run_on(box, request, timeout_s, max_output_bytes, scratch_mb)
            finally:
                pool.release(box, abnormal=outcome is None or outcome.timed_out or outcome.status is None
                             or outcome.scratch_full)
            if outcome is not None:
                return outcome
        raise SandboxError(f"three {mode} sandboxes in a row died before starting the program")

    async def _run_on(self, box: Sandbox, request: bytes, timeout_s: float, max_output_bytes: int,
                      scratch_mb: int) -> Outcome | None:
        """None when the sandbox died before starting the program (the caller tries another).

        Returns once the supervisor reported (every process of the program is gone by then) and
        the output pipes closed; the sandbox's own exit, slowed by the kernel tearing down its
        namespaces, is reaped in the background. A scratch dir on the host disk (no tmpfs to cap
        it) is watched meanwhile, and the program killed once it holds over ``scratch_mb``."""
        box.capture(max_output_bytes)
        deadline = self.loop.time() + timeout_s
        try:
            await asyncio.wait_for(box.send(request), timeout_s)
        except (OSError, asyncio.TimeoutError):
            pass
        remaining = max(0.0, deadline - self.loop.time())
        ends: set[asyncio.Future] = {box.reported, box.exited}
        watcher = None
        if box.info.get("scratch_on_host"):
            watcher = self.loop.create_task(scratch.watch(box.spec.scratch, scratch_mb << 20))
            ends.add(watcher)
        done, _ = await asyncio.wait(ends, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
        timed_out = not done
        full = watcher in done and watcher.exception() is None and not (box.reported.done() or box.exited.done())
        if watcher is not None:
            watcher.cancel()
        if timed_out or full:
            box.kill()
            await asyncio.wait({box.exited}, timeout=EXIT_GRACE_S)
        elif not box.reported.done():  # it died: a report may still be in the socket
            await asyncio.wait({box.reported}, timeout=PIPE_GRACE_S)
        await asyncio.wait({box.output_closed}, timeout=PIPE_GRACE_S)
        if not timed_out and "child" not in box.messages:
            return None  # the program never started (a sandbox dying as it took it): run it elsewhere
        m = box.messages
        return Outcome(
            status=m.get("status"), stdout=box.buffers[1].text("stdout"), stderr=box.buffers[2].text("stderr"),
            timed_out=timed_out, pid=box.pid, mode=box.spec.mode, uid=box.spec.uid, info=dict(box.info),
            cpu_s=m.get("cpu_s"), maxrss_kb=m.get("maxrss_kb"), scratch_full=full,
        )


_lock = threading.Lock()
_service: Service | None = None


def service() -> Service:
    """The process's sandbox service, started on first use."""
    global _service
    with _lock:
        if _service is None or _service.closed:
            _service = Service()
        return _service


def shutdown() -> None:
    """Kill every sandbox and stop the service; the next call starts a new one."""
    global _service
    with _lock:
        svc, _service = _service, None
    if svc is not None:
        svc.close()


def _forget_in_child() -> None:
    global _service, _lock
    _lock = threading.Lock()
    if _service is not None:
        _service.abandon()
    _service = None


atexit.register(shutdown)
os.register_at_fork(after_in_child=_forget_in_child)
