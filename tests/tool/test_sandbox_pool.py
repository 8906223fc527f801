"""The warm pool: one fresh interpreter per call, concurrency, many loops and threads, recovery,
clean shutdown (explicit, at exit, and when the caller is killed), the fallback's warning."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import warnings

import pytest

from astuner.tool import ToolLimits, pool
from astuner.tool.run import run_python, shutdown
from tests.conftest import REPO
from tests.tool.test_sandbox_support import MODES, assert_gone, assert_no_survivors, run_sandbox

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True, scope="module")
def _no_sandbox_left_behind():
    """Later test modules may count this process's children: leave no idle sandbox to them."""
    yield
    shutdown()


def idle_boxes() -> list[pool.Sandbox]:
    svc = pool.service()
    return [box for p in svc.pools.values() for box in p.idle]


def wait_for_idle(mode: str) -> list[pool.Sandbox]:
    """The live idle sandboxes of ``mode`` once the pool has refilled (at most 10 s)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        svc = pool.service()
        boxes = [b for b in idle_boxes() if b.spec.mode == mode and not b.exited.done()]
        if boxes and not any(p.starting for p in list(svc.pools.values())):
            return boxes
        time.sleep(0.05)
    raise AssertionError(f"no idle {mode} sandbox after 10 s")


@pytest.mark.parametrize("mode", MODES)
def test_each_call_gets_a_fresh_interpreter(mode):
    limits = ToolLimits(timeout_s=5.0, isolation=mode)
    first, _ = run_sandbox("import builtins, json\nbuiltins.LEFT_BEHIND = 1\njson.MARK = 2\n"
                           "open('note.txt', 'w').write('x')\nprint('set')\n", limits)
    second, _ = run_sandbox("import builtins, json, os\n"
                            "print(hasattr(builtins, 'LEFT_BEHIND'), hasattr(json, 'MARK'), os.path.exists('note.txt'))\n",
                            limits)
    assert first.stdout == "set\n" and second.stdout == "False False False\n"
    assert first.pid != second.pid
    # under bwrap every sandbox has the same scratch path (for reproducible tracebacks) on a tmpfs
    # of its own; the 'process' fallback shares the host's /tmp and needs a unique name
    assert (first.info["scratch"] == second.info["scratch"]) == (mode == "bwrap")


@pytest.mark.parametrize("mode", MODES)
def test_64_concurrent_calls(mode):
    limits = ToolLimits(timeout_s=60.0, isolation=mode)

    async def go():
        return await asyncio.gather(*(run_python(f"print({i} * 2)", limits.timeout_s, limits) for i in range(64)))

    start = time.monotonic()
    results = asyncio.run(go())
    elapsed = time.monotonic() - start
    assert [r.stdout for r in results] == [f"{i * 2}\n" for i in range(64)]
    assert all(r.returncode == 0 and not r.timed_out for r in results)
    assert len({r.pid for r in results}) == 64
    assert elapsed < 60.0
    for r in results:
        assert_no_survivors(r)


def test_calls_from_many_threads_and_event_loops():
    limits = ToolLimits(timeout_s=10.0)
    outputs: dict[int, list[str]] = {}

    def worker(n: int) -> None:
        outputs[n] = [asyncio.run(run_python(f"print({n}, {k})", 10.0, limits)).stdout for k in range(3)]

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outputs == {n: [f"{n} {k}\n" for k in range(3)] for n in range(4)}


@pytest.mark.parametrize("mode", MODES)
def test_recovers_when_idle_sandboxes_died(mode):
    limits = ToolLimits(timeout_s=5.0, isolation=mode, pool_size=2)
    run_sandbox("print(1)", limits)
    boxes = wait_for_idle(mode)
    for box in boxes:
        os.kill(box.pid, signal.SIGKILL)
    # the kill lands asynchronously; the property under test is that dead idle sandboxes are skipped
    deadline = time.monotonic() + 5
    while any(pool._alive(box.pid) for box in boxes) and time.monotonic() < deadline:
        time.sleep(0.01)
    result, _ = run_sandbox("print('still works')", limits)
    assert result.stdout == "still works\n" and result.returncode == 0


def test_pool_size_zero_starts_sandboxes_on_demand():
    shutdown()
    result, _ = run_sandbox("print(3)", ToolLimits(timeout_s=5.0, pool_size=0))
    assert result.stdout == "3\n"
    assert idle_boxes() == []


def test_large_program_passes_through():
    code = f"data = {'x' * (2 << 20)!r}\nprint(len(data))\n"
    result, _ = run_sandbox(code, ToolLimits(timeout_s=10.0))
    assert result.stdout == f"{2 << 20}\n"


@pytest.mark.parametrize("mode", MODES)
def test_shutdown_kills_every_sandbox_and_a_new_call_restarts(mode):
    limits = ToolLimits(timeout_s=5.0, isolation=mode, pool_size=3)
    run_sandbox("print(1)", limits)
    boxes = wait_for_idle(mode)
    pids, uids = [b.pid for b in boxes], [b.spec.uid for b in boxes]
    shutdown()
    assert_gone(pids=tuple(pids))
    for uid in uids:
        if uid is not None:
            assert_gone(uid=uid)
    result, _ = run_sandbox("print(2)", limits)
    assert result.stdout == "2\n"


CHILD = """
import asyncio, json, sys, time
from astuner.tool import ToolLimits, pool
from astuner.tool.run import run_python
limits = ToolLimits(timeout_s=5.0, isolation=sys.argv[1], pool_size=3)
assert asyncio.run(run_python("print(1)", 5.0, limits)).stdout == "1\\n"
time.sleep(0.5)
boxes = [b for p in pool.service().pools.values() for b in p.idle]
print(json.dumps([[b.pid, b.spec.uid] for b in boxes]), flush=True)
if sys.argv[2] == "hang":
    time.sleep(60)
"""


def _child(mode: str, action: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    return subprocess.Popen([sys.executable, "-c", CHILD, mode, action], cwd=REPO, env=env, stdout=subprocess.PIPE, text=True)


def _assert_boxes_gone(listing: str) -> None:
    boxes = json.loads(listing)
    assert boxes, "the child had no idle sandbox to check"
    for pid, uid in boxes:
        assert_gone(pids=(pid,), uid=uid, within_s=3.0)


@pytest.mark.parametrize("mode", MODES)
def test_interpreter_exit_leaves_no_sandbox(mode):
    child = _child(mode, "exit")
    out, _ = child.communicate(timeout=60)
    assert child.returncode == 0
    _assert_boxes_gone(out.strip())


@pytest.mark.parametrize("mode", MODES)
def test_caller_killed_with_sigkill_takes_its_sandboxes_down(mode):
    child = _child(mode, "hang")
    try:
        listing = child.stdout.readline()
    finally:
        child.kill()
        child.wait(timeout=10)
    _assert_boxes_gone(listing.strip())


def test_forked_caller_gets_its_own_service():
    run_sandbox("print(1)", ToolLimits(timeout_s=5.0))
    parent_service = pool.service()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            child_service = pool.service()
            result = asyncio.run(run_python("print('child')", 5.0, ToolLimits(timeout_s=5.0)))
            code = 0 if result.stdout == "child\n" and child_service is not parent_service else 2
            pool.shutdown()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    result, _ = run_sandbox("print('parent')", ToolLimits(timeout_s=5.0))
    assert result.stdout == "parent\n" and pool.service() is parent_service


def test_auto_falls_back_to_process_with_one_warning(monkeypatch):
    shutdown()
    monkeypatch.setattr(pool, "bwrap_binary", lambda: None)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            first, _ = run_sandbox("print(1)", ToolLimits(timeout_s=5.0))
            second, _ = run_sandbox("print(2)", ToolLimits(timeout_s=5.0))
        assert (first.isolation, second.isolation) == ("process", "process")
        messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
        assert len(messages) == 1
        assert "bubblewrap is unavailable" in messages[0] and "NOT protected" in messages[0]
    finally:
        shutdown()


def test_explicit_bwrap_that_cannot_build_a_sandbox_raises(monkeypatch):
    if shutil.which("bwrap") is None:
        pytest.skip("bwrap (bubblewrap) is not installed")
    shutdown()
    real_spec = pool.worker_spec

    def broken(mode, scratch_mb, uid):
        spec = real_spec(mode, scratch_mb, uid)
        if mode == "bwrap":
            spec = type(spec)(spec.mode, [spec.argv[0], "--no-such-option", *spec.argv[1:]], spec.env, spec.scratch, spec.uid)
        return spec

    monkeypatch.setattr(pool, "worker_spec", broken)
    try:
        with pytest.raises(pool.SandboxError, match="no-such-option"):
            run_sandbox("print(1)", ToolLimits(timeout_s=5.0, isolation="bwrap"))
    finally:
        shutdown()
