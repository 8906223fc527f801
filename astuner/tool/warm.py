"""Warm sandboxes of one kind (mode, scratch size): started ahead of time, handed out, refilled.

Why: starting a sandbox (bwrap, then an interpreter) costs tens of milliseconds, as much as a bare
``python -c``. A ``Pool`` keeps ``pool_size`` of them started and ready; a call takes a ready one,
hands it exactly one program, and the sandbox runs it in a fresh fork of its supervisor and then
exits (``worker.py``). No interpreter ever runs two programs, so every taken sandbox is replaced.

A ``Pool`` lives on the sandbox service's event loop (``pool.py``) and asks the service to spawn
each sandbox, so the service keeps the bookkeeping (uids, the set of live sandboxes) in one place.
"""

from __future__ import annotations

import asyncio
import os
from collections import deque
from typing import TYPE_CHECKING

from astuner.tool.sandbox import PIPE_GRACE_S, Sandbox, SandboxError

if TYPE_CHECKING:
    from astuner.tool.pool import Service

READY_TIMEOUT_S = 30.0
"""How long a new sandbox may take to report ready (a loaded 2-core host starts dozens at once)."""
MAX_STARTING = max(4, 2 * (os.cpu_count() or 1))
"""Sandboxes started at once per pool: more only queue for the same CPUs."""


def alive(pid: int) -> bool:
    """False for a process that is gone or a zombie: killed while idle, its exit not yet reaped by
    the event loop (handing it out would lose the program it is given)."""
    try:
        stat = open(f"/proc/{pid}/stat").read()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


class Pool:
    """Idle sandboxes of one kind (mode, scratch size), refilled in the background."""

    def __init__(self, service: Service, mode: str, scratch_mb: int) -> None:
        self.service, self.mode, self.scratch_mb = service, mode, scratch_mb
        self.idle: deque[Sandbox] = deque()
        self.waiters: deque[asyncio.Future[Sandbox]] = deque()
        self.starting = 0
        self.size = 0

    async def acquire(self, size: int) -> Sandbox:
        self.size = size
        while self.idle:
            box = self.idle.popleft()
            if not box.exited.done() and alive(box.pid):
                # Replaced by ``release``, after the call, so start-up does not compete with it,
                # unless the pool runs low: then back-to-back calls would wait for start-ups.
                if len(self.idle) < (self.size + 1) // 2:
                    self._refill()
                return box
            box.dispose(abnormal=False)
        waiter = self.service.loop.create_future()
        self.waiters.append(waiter)
        self._refill()
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self.offer(waiter.result())
            raise

    def release(self, box: Sandbox, abnormal: bool) -> None:
        """A call is done with ``box``: dispose of it and start its replacement."""
        box.dispose(abnormal)
        self._refill()

    def _refill(self) -> None:
        waiting = sum(not w.done() for w in self.waiters)
        wanted = self.size + waiting - len(self.idle) - self.starting
        for _ in range(max(0, min(wanted, MAX_STARTING - self.starting))):
            self.starting += 1
            self.service.loop.create_task(self._start_and_offer())

    async def _start_and_offer(self) -> None:
        try:
            box = await self.start_one()
        except Exception as exc:
            self.starting -= 1
            while self.waiters:
                waiter = self.waiters.popleft()
                if not waiter.done():
                    waiter.set_exception(exc)
                    break
            self._refill()
            return
        self.starting -= 1
        self.offer(box)
        self._refill()

    async def start_one(self) -> Sandbox:
        """Start one sandbox and wait until its supervisor reports ready."""
        try:
            box = self.service.new_sandbox(self.mode, self.scratch_mb)
        except OSError as exc:
            raise SandboxError(f"cannot start a {self.mode} sandbox: {exc}") from exc
        try:
            await asyncio.wait({box.ready, box.exited}, timeout=READY_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED)
            if box.ready.done():
                info = box.ready.result()
                self.service.sandbox_ready(self.mode, info)
                return box
            if not box.exited.done():
                raise SandboxError(f"a {self.mode} sandbox did not start within {READY_TIMEOUT_S:g} s")
            await asyncio.wait({box.log_closed}, timeout=PIPE_GRACE_S)
            raise SandboxError(box.startup_failure())
        except BaseException:
            box.dispose(abnormal=True)
            raise

    def offer(self, box: Sandbox) -> None:
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(box)
                return
        self.idle.append(box)
