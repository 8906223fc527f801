"""``--debugpy`` with a real debugger: the CLI as a child, a DAP client attaching, a workflow breakpoint hit.

The client (``tests/dap_client.py``) does what VSCode's "attach to astuner" does: initialize,
attach, set a breakpoint in the tutorial's workflow file, configurationDone. Every socket read and
every wait on the child ends by one deadline, so a hang fails the test with a message.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.dap_client import DapClient

pytestmark = pytest.mark.integration

OFFLINE = "tutorial/example_math_agent/math_agent_offline.yaml"
WORKFLOW = REPO / "tutorial" / "example_math_agent" / "math_agent.py"
BREAK_AT = "astune_proxy.update_judge_input_dictionary(final_answer=final_answer)"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def line_of(path: Path, text: str) -> int:
    (number,) = [i for i, line in enumerate(path.read_text().splitlines(), 1) if text in line]
    return number


class Child:
    """The CLI as a child process; its merged output read by a thread, so waits for a line have deadlines."""

    def __init__(self, args: list[str], tmp_path: Path) -> None:
        env = {**os.environ, "ASTUNER_CACHE": str(tmp_path / "cache"), "AGENTSCOPE_DISABLE_CONSOLE_OUTPUT": "true"}
        self.proc = subprocess.Popen([sys.executable, *args], cwd=REPO, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        self._queue: queue.Queue[str] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self._queue.put(line.rstrip("\n"))

    def wait_line(self, text: str, deadline: float) -> str:
        """The first output line containing ``text``; fails if the child exits or the deadline passes first."""
        while True:
            left = deadline - time.monotonic()
            assert left > 0, f"no line with {text!r} in time; output so far:\n" + "\n".join(self.lines)
            try:
                line = self._queue.get(timeout=min(left, 0.5))
            except queue.Empty:
                if not self._reader.is_alive() and self._queue.empty():
                    raise AssertionError(f"the child closed its output ({self.proc.poll()}) before {text!r}:\n"
                                         + "\n".join(self.lines)) from None
                continue
            self.lines.append(line)
            if text in line:
                return line

    def finish(self, deadline: float) -> int:
        """Wait for the exit code (by the deadline) and collect the rest of the output."""
        code = self.proc.wait(timeout=max(deadline - time.monotonic(), 1))
        self._reader.join(timeout=5)
        while not self._queue.empty():
            self.lines.append(self._queue.get())
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def adapters_on(port: int) -> list[int]:
    """Pids of debugpy adapter processes serving ``port`` (the process ``debugpy.listen`` spawns)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(a.endswith(b"debugpy/adapter") for a in argv) and b"--port" in argv and str(port).encode() in argv:
            found.append(int(proc.name))
    return found


def rollout_lines(exp: Path) -> list[str]:
    path = next(exp.glob("*/rollouts/debug.jsonl"), None)
    return path.read_text().splitlines() if path is not None else []


@pytest.mark.timeout(120)
def test_a_real_client_attaches_stops_at_a_workflow_breakpoint_and_the_run_finishes(tmp_path):
    deadline = time.monotonic() + 110
    port, exp = free_port(), tmp_path / "exp"
    line = line_of(WORKFLOW, BREAK_AT)
    child = Child(["-m", "astuner", "--conf", OFFLINE, "--backbone=debug", "--exp-dir", str(exp),
                   "--debugpy", f"127.0.0.1:{port}", "--wait-for-client", "astuner.debug.debug_first_n_tasks=2"], tmp_path)
    client = None
    try:
        listening = child.wait_line("debugpy listening on", deadline)
        assert f"127.0.0.1:{port}" in listening and "waiting for it before the run starts" in listening
        time.sleep(1.5)
        assert child.proc.poll() is None, "the run did not wait for the client"
        assert not exp.exists(), "the run created its folder before a client attached"

        client = DapClient("127.0.0.1", port, deadline=deadline)
        client.request("initialize", {"clientID": "astuner-tests", "adapterID": "debugpy", "pathFormat": "path",
                                      "linesStartAt1": True, "columnsStartAt1": True})
        attach = client.send("attach", {"name": "attach to astuner", "type": "debugpy", "request": "attach", "justMyCode": True})
        client.wait_event("initialized")
        source = {"path": str(WORKFLOW)}
        set_bp = client.request("setBreakpoints", {"source": source, "breakpoints": [{"line": line}]})
        assert [bp["line"] for bp in set_bp["body"]["breakpoints"]] == [line]
        client.request("configurationDone")
        client.response(attach)

        stopped = client.wait_event("stopped", reason="breakpoint")
        thread = stopped["body"]["threadId"]
        (top,) = client.request("stackTrace", {"threadId": thread, "levels": 1})["body"]["stackFrames"]
        assert Path(top["source"]["path"]).resolve() == WORKFLOW.resolve() and top["line"] == line
        answer = client.request("evaluate", {"expression": "final_answer", "frameId": top["id"], "context": "watch"})
        assert "boxed{" in answer["body"]["result"]
        assert rollout_lines(exp) == [], "a rollout ended while the workflow was stopped at the breakpoint"

        client.request("setBreakpoints", {"source": source, "breakpoints": []})
        client.request("continue", {"threadId": thread})
        client.request("disconnect", {})
        code = child.finish(deadline)
    finally:
        if client is not None:
            client.close()
        child.kill()
    output = "\n".join(child.lines)
    assert code == 0, output
    rows = [json.loads(row) for row in rollout_lines(exp)]
    assert len(rows) == 4 and all(r["samples"] for r in rows), output
    (run,) = list(exp.iterdir())
    assert json.loads((run / "summary.json").read_text())["rollouts"] == 4


@pytest.mark.timeout(60)
def test_ctrl_c_while_waiting_for_the_client_exits_130_and_leaves_nothing(tmp_path):
    deadline = time.monotonic() + 50
    port, exp = free_port(), tmp_path / "exp"
    child = Child(["-m", "astuner", "--conf", OFFLINE, "--backbone=debug", "--exp-dir", str(exp),
                   "--debugpy", str(port), "--wait-for-client"], tmp_path)
    try:
        child.wait_line(f"debugpy listening on 127.0.0.1:{port}", deadline)
        assert adapters_on(port), "no debugpy adapter serves the port"
        child.proc.send_signal(signal.SIGINT)
        code = child.finish(deadline)
    finally:
        child.kill()
    assert code == 130, "\n".join(child.lines)
    assert "astuner: interrupted" in child.lines
    assert not exp.exists()
    while adapters_on(port):
        assert time.monotonic() < deadline, f"the debugpy adapter outlived the run: {adapters_on(port)}"
        time.sleep(0.2)


@pytest.mark.timeout(120)
def test_debugpy_is_ignored_with_a_note_when_the_run_already_runs_under_a_debugger(tmp_path):
    deadline = time.monotonic() + 110
    exp = tmp_path / "exp"
    child = Child(["-m", "debugpy", "--listen", f"127.0.0.1:{free_port()}", "-m", "astuner", "--conf", OFFLINE,
                   "--backbone=debug", "--exp-dir", str(exp), "--debugpy", "0", "astuner.debug.debug_first_n_tasks=1"],
                  tmp_path)
    try:
        code = child.finish(deadline)
    finally:
        child.kill()
    output = "\n".join(child.lines)
    assert code == 0, output
    assert "already running under a debugger; --debugpy is ignored" in output
    assert "debugpy listening on" not in output
    assert len(rollout_lines(exp)) == 2
