"""The CPU learning miniature runs beside the other tiers (a pytest plugin, loaded by ``conftest.py``).

Why: the miniature (``python -m experiments.tool_discipline --profile cpu``) is 14-16 minutes of
one-threaded torch work, more than half of ``.ci/run``'s wall time when it ran after the other tiers
(1685 s in all at b14623f). Its numbers do not depend on the machine's load (one torch thread,
float64 decoding, a fixed scratch path in the sandbox: docs/benchmarks.md, "CI: the learning
miniature"), so when collection selects a test that asks for the ``tool_discipline_miniature``
fixture, the run starts at once as a child process, and the test, which comes last (tier ``slow``),
waits for it and checks what it wrote. The other tiers meanwhile share the two cores with it.

Stopping: the child gets SIGINT when the session ends with it still running (a failure under
``-x``, Ctrl-C) or when pytest dies (parent-death signal): the pipeline then stops its GRPO process
group as on Ctrl-C; SIGKILL to its group follows after ``STOP_GRACE_S``.

Not guaranteed: that the run's numbers equal those of ``run()`` called in-process on another
machine (another CPU kind or package set is another draw; the bars in the test allow for it); a
child stopped by SIGKILL to pytest's whole process group cannot clean up after itself.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FIXTURE = "tool_discipline_miniature"
DEADLINE_S = 2400
"""Seconds from the child's start until the test gives up on it (1046 s measured beside a full
``.ci/run``; docs/benchmarks.md)."""
STOP_GRACE_S = 60
_PR_SET_PDEATHSIG = 1


class Miniature:
    """One background run of the miniature: its process, output folder and log."""

    def __init__(self) -> None:
        self.out = Path(tempfile.mkdtemp(prefix="astuner_miniature_")) / "tool_discipline"
        self.log = self.out.parent / "run.log"
        self.started = time.monotonic()
        self.finished: float | None = None
        env = {**os.environ, "AGENTSCOPE_DISABLE_CONSOLE_OUTPUT": "true", "PYTHONUNBUFFERED": "1"}
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "experiments.tool_discipline", "--profile", "cpu", "--out", str(self.out)],
                cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, preexec_fn=_interrupt_when_parent_dies)

    def results(self) -> dict:
        """Wait for the run (until ``DEADLINE_S`` after its start) and return its ``results.json``;
        fails the test with the log's tail when it overran or exited non-zero."""
        try:
            code = self.proc.wait(timeout=max(1.0, self.started + DEADLINE_S - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.stop()
            pytest.fail(f"the miniature ran over {DEADLINE_S} s and was stopped:\n{self.tail()}")
        self.finished = self.finished or time.monotonic()
        if code != 0:
            pytest.fail(f"the miniature exited {code}:\n{self.tail()}")
        return json.loads((self.out / "results.json").read_text())

    def tail(self, chars: int = 6000) -> str:
        return self.log.read_text(errors="replace")[-chars:]

    def stop(self) -> None:
        """SIGINT (the pipeline stops its GRPO child as on Ctrl-C), then SIGKILL to its group."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except OSError:
            pass
        self.proc.wait()


def _interrupt_when_parent_dies() -> None:
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGINT, 0, 0, 0)


_run: Miniature | None = None
_kept = False
"""Whether the run's output was kept (the session failed), for the summary line."""


def pytest_collection_finish(session: pytest.Session) -> None:
    global _run
    if session.config.option.collectonly or _run is not None:
        return
    if any(FIXTURE in getattr(item, "fixturenames", ()) for item in session.items):
        _run = Miniature()


@pytest.fixture
def tool_discipline_miniature() -> tuple[dict, Path]:
    """(the results, the output folder) of the miniature started at collection (see the module)."""
    if _run is None:
        pytest.fail("the miniature was not started at collection (tests/miniature.py)")
    return _run.results(), _run.out


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    global _kept
    if _run is None:
        return
    _run.stop()
    _kept = exitstatus != 0
    if not _kept:
        shutil.rmtree(_run.out.parent, ignore_errors=True)


def pytest_terminal_summary(terminalreporter) -> None:
    if _run is None:
        return
    kept = f"; its output: {_run.out.parent}" if _kept else ""
    if _run.finished is None:
        terminalreporter.write_line(f"miniature: stopped before it finished{kept}")
    else:
        terminalreporter.write_line(f"miniature: ran {_run.finished - _run.started:.0f} s beside the other tiers{kept}")
