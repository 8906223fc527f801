"""math-verify as a guarded second opinion: it may say "equal", it can never crash or hang a rollout.

``MathVerifier.check(answer, reference)`` asks the ``math_verify`` package (Hugging Face's
math-verify: LaTeX and expression parsing with sympy, then symbolic and numeric comparison)
whether two answers are equal, and always returns a ``SecondOpinion`` within its deadline:

1. **Screened first**: an empty side, a side longer than ``MAX_CHARS`` characters or nested deeper
   than ``MAX_NESTING`` brackets is not sent (outcome ``skipped``); these are where parsers
   spend their time, and no real final answer looks like that.
2. **Asked in a child process** (``math_verify_worker.py``), one per verifier, started on first use
   and kept. Why not a thread: sympy can spend minutes inside one big-integer operation that holds
   the GIL (``9^{9^{9^{9}}}``), which blocks every thread of the rollout's process, and
   math-verify's own timeouts use ``SIGALRM``, which works only in the main thread (the judge runs
   in worker threads) and cannot interrupt such an operation either. A process can be killed.
3. **Deadline**: no reply within ``timeout_s`` -> the worker is SIGKILLed (outcome ``timeout``) and
   a new one is started on the next call. A worker that exits or replies with an error gives
   ``error``. Calls are serialised (one request in flight per worker); a caller waits at most
   ``queue_timeout_s`` for its turn (outcome ``timeout``, "busy").
4. **Unavailable**: when the worker cannot start (math-verify not importable, no ready line within
   ``start_timeout_s``), this verifier says ``unavailable`` from then on, without retrying, and
   logs one warning.

Both strings are wrapped as inline math (``$...$``, bare ``$`` signs removed), so math-verify reads
each as one expression: it is not used to search prose for a number.

Not guaranteed: a worker that is busy with a hostile computation when its parent dies without
closing it lives on until that computation ends (an idle worker exits as soon as the parent's pipe
closes); the first call pays the worker's start-up (about a second for sympy's import), which
does not count against ``timeout_s``; outcomes under heavy machine load may differ from an idle
machine when a comparison takes close to ``timeout_s``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import select
import subprocess
import sys
import threading
import time
import weakref
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

MAX_CHARS = 1000
"""Longest answer or reference (characters) sent to math-verify."""
MAX_NESTING = 20
"""Deepest nesting of ``{``, ``(`` and ``[`` sent to math-verify."""
WORKER = Path(__file__).with_name("math_verify_worker.py")

OUTCOMES = ("match", "no_match", "skipped", "timeout", "error", "unavailable")
_BARE_DOLLAR = re.compile(r"(?<!\\)\$")


@dataclass(frozen=True)
class SecondOpinion:
    """math-verify's answer: ``outcome`` is one of ``OUTCOMES``; ``detail`` says why for all but
    ``match`` / ``no_match``."""

    outcome: str
    detail: str = ""

    @property
    def matched(self) -> bool:
        return self.outcome == "match"


def screen(text: str) -> str | None:
    """Why ``text`` is not sent to math-verify, or None when it may be."""
    if not text.strip():
        return "empty"
    if len(text) > MAX_CHARS:
        return f"longer than {MAX_CHARS} characters"
    depth = deepest = 0
    for char in text:
        if char in "{([":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "})]":
            depth = max(0, depth - 1)
    if deepest > MAX_NESTING:
        return f"nested deeper than {MAX_NESTING}"
    return None


def as_math(text: str) -> str:
    """``text`` as one inline-math expression for math-verify."""
    return "$" + _BARE_DOLLAR.sub("", text.strip()) + "$"


class _Worker:
    """One running ``math_verify_worker.py`` and the bytes read from it but not yet consumed."""

    def __init__(self, start_timeout_s: float) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(WORKER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        self.buffer = b""
        hello = self.read_line(start_timeout_s)
        if hello is None or not hello.get("ready"):
            reason = (hello or {}).get("error") or f"no ready line within {start_timeout_s:g} s"
            self.stop()
            raise RuntimeError(reason)

    def ask(self, gold: str, answer: str, timeout_s: float) -> dict | None:
        """The worker's reply, or None when none came within ``timeout_s`` (or the worker ended)."""
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps({"gold": gold, "answer": answer}) + "\n").encode())
        self.proc.stdin.flush()
        return self.read_line(timeout_s)

    def read_line(self, timeout_s: float) -> dict | None:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout_s
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return None
            chunk = os.read(fd, 65536)
            if not chunk:
                return None
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        try:
            reply = json.loads(line)
        except ValueError:
            return {"error": f"unreadable reply {line[:80]!r}"}
        return reply if isinstance(reply, dict) else {"error": f"unreadable reply {line[:80]!r}"}

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        for pipe in (self.proc.stdin, self.proc.stdout):
            try:
                if pipe is not None:
                    pipe.close()
            except OSError:
                pass
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def _stop_worker(holder: list[_Worker | None]) -> None:
    """Finaliser: stop the worker a verifier still holds (at garbage collection or interpreter exit)."""
    if holder[0] is not None:
        holder[0].stop()
        holder[0] = None


class MathVerifier:
    """A guarded math-verify: ``check`` returns a ``SecondOpinion`` and never raises (module docstring).

    Thread-safe; one worker process per verifier, stopped by ``close`` or when the verifier is
    garbage-collected or the interpreter exits.
    """

    def __init__(self, timeout_s: float = 5.0, *, start_timeout_s: float = 60.0, queue_timeout_s: float = 60.0) -> None:
        self.timeout_s = float(timeout_s)
        self.start_timeout_s = float(start_timeout_s)
        self.queue_timeout_s = float(queue_timeout_s)
        self.unavailable_reason: str | None = None
        self._lock = threading.Lock()
        self._holder: list[_Worker | None] = [None]
        weakref.finalize(self, _stop_worker, self._holder)

    def check(self, answer: str, reference: str) -> SecondOpinion:
        """Whether math-verify finds ``answer`` equal to ``reference``; see the module docstring."""
        for side, text in (("answer", answer), ("reference", reference)):
            why = screen(text)
            if why is not None:
                return SecondOpinion("skipped", f"{side} {why}")
        if self.unavailable_reason is not None:
            return SecondOpinion("unavailable", self.unavailable_reason)
        if not self._lock.acquire(timeout=self.queue_timeout_s):
            return SecondOpinion("timeout", f"busy: no turn within {self.queue_timeout_s:g} s")
        try:
            return self._ask(as_math(answer), as_math(reference))
        finally:
            self._lock.release()

    def close(self) -> None:
        """Stop the worker process (a later ``check`` starts a new one)."""
        with self._lock:
            _stop_worker(self._holder)

    def _ask(self, answer: str, gold: str) -> SecondOpinion:
        worker = self._holder[0]
        if worker is None or not worker.alive():
            if worker is not None:
                worker.stop()
                self._holder[0] = None
            try:
                worker = _Worker(self.start_timeout_s)
            except (OSError, RuntimeError) as exc:
                self.unavailable_reason = f"math-verify worker did not start: {exc}"
                logger.warning("%s; the math judge uses its own comparison only", self.unavailable_reason)
                return SecondOpinion("unavailable", self.unavailable_reason)
            self._holder[0] = worker
        try:
            reply = worker.ask(gold, answer, self.timeout_s)
        except OSError as exc:  # the worker's stdin closed under us: it died between calls
            reply = {"error": f"worker pipe failed: {exc}"}
        if reply is None:
            exited = worker.proc.poll()
            worker.stop()
            self._holder[0] = None
            if exited is not None:
                return SecondOpinion("error", f"math-verify worker exited with status {exited}")
            return SecondOpinion("timeout", f"no answer within {self.timeout_s:g} s; worker killed")
        if "error" in reply:
            return SecondOpinion("error", str(reply["error"])[:200])
        return SecondOpinion("match" if reply.get("match") is True else "no_match")
