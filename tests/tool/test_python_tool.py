"""astuner's sandboxed execute_python_code: format, limits, timeouts and no survivors.

Runs under the default isolation ('auto': bwrap where it works). The hostile-program corpus, run
under both modes, is tests/tool/test_sandbox_corpus.py.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time

import pytest

from astuner.tool import ToolLimits, current_limits, execute_python_code, use_limits
from astuner.tool.isolation import BWRAP_SCRATCH_NAME
from astuner.tool.python_tool import effective_timeout
from astuner.tool.run import shutdown
from tests.tool.test_sandbox_support import assert_gone, live_processes, new_tag, parse, run_tool, tag_code

pytestmark = pytest.mark.integration

SLACK_S = 1.5


@pytest.fixture(autouse=True, scope="module")
def _no_sandbox_left_behind():
    """Later test modules may count this process's children: leave no idle sandbox to them."""
    yield
    shutdown()


def run(code: str, limits: ToolLimits | None = None, **kwargs) -> tuple[str, float]:
    """The tool's text for ``code`` and the seconds it took."""
    return run_tool(code, limits, **kwargs)


def test_print_round_trip():
    text, elapsed = run("print(1)")
    assert text == "<returncode>0</returncode><stdout>1\n</stdout><stderr></stderr>"
    assert elapsed < 2.0 + SLACK_S


def test_gsm8k_style_computation():
    code = "eggs = 16 - 3 - 4\nprint(eggs * 2)\n"
    assert parse(run(code)[0]) == (0, "18\n", "")


def test_no_print_gives_empty_stdout():
    rc, out, err = parse(run("x = 6 * 7")[0])
    assert (rc, out, err) == (0, "", "")


def test_error_exit_code_and_traceback():
    rc, out, err = parse(run("print('a')\nraise ValueError('boom')")[0])
    assert rc == 1 and out == "a\n" and "ValueError: boom" in err


def test_infinite_cpu_loop_times_out():
    tag = new_tag()
    text, elapsed = run(tag_code(tag) + "while True:\n    pass\n", ToolLimits(timeout_s=1.0))
    rc, out, err = parse(text)
    assert rc == -1
    assert err.endswith("TimeoutError: The code execution exceeded the timeout of 1 seconds.")
    assert elapsed < 1.0 + SLACK_S
    assert_gone(tag)


def test_sleep_loop_times_out():
    tag = new_tag()
    code = tag_code(tag) + "import time\nwhile True:\n    time.sleep(0.1)\n"
    text, elapsed = run(code, ToolLimits(timeout_s=1.0))
    rc, out, _ = parse(text)
    assert rc == -1 and elapsed < 1.0 + SLACK_S
    assert_gone(tag)


def test_sigterm_ignored_still_killed():
    tag = new_tag()
    code = tag_code(tag) + "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\ntime.sleep(30)\n"
    text, elapsed = run(code, ToolLimits(timeout_s=1.0))
    rc, out, _ = parse(text)
    assert rc == -1 and elapsed < 1.0 + SLACK_S
    assert_gone(tag)


def test_large_output_is_capped_head_and_tail():
    code = "import sys\nsys.stdout.write('HEAD' + 'x' * (10 * 1024 * 1024) + 'TAIL')\n"
    text, elapsed = run(code, ToolLimits(timeout_s=5.0, max_output_chars=1000))
    rc, out, _ = parse(text)
    assert rc == 0 and elapsed < 5.0 + SLACK_S
    assert out.startswith("HEAD") and out.endswith("TAIL")
    assert "truncated" in out and str(10 * 1024 * 1024 + 8) in out
    assert len(out) < 1000 + 200


def test_binary_garbage_output_decodes():
    code = "import sys\nsys.stdout.buffer.write(bytes(range(256)) * 4)\nsys.stderr.buffer.write(b'\\xff\\xfe')\n"
    rc, out, err = parse(run(code)[0])
    assert rc == 0 and "\ufffd" in out and "\ufffd" in err


def sleep_argument() -> tuple[str, str]:
    """A ``sleep`` duration unique to one test, so the exec'd grandchild can be found on the host."""
    token = f"{int.from_bytes(os.urandom(4), 'big'):010d}"
    return f"29.{token}", token


def test_grandchild_holding_pipe_is_killed():
    duration, token = sleep_argument()
    code = f"import subprocess\np = subprocess.Popen(['sleep', '{duration}'])\nprint(p.pid, flush=True)\n"
    text, elapsed = run(code, ToolLimits(timeout_s=5.0))
    rc, out, _ = parse(text)
    assert rc == 0
    assert elapsed < 2.0, "waited for the grandchild's pipe"
    assert_gone(token)


def test_grandchild_outliving_timeout_is_killed():
    duration, token = sleep_argument()
    code = f"import subprocess, time\np = subprocess.Popen(['sleep', '{duration}'])\ntime.sleep(30)\n"
    text, elapsed = run(code, ToolLimits(timeout_s=1.0))
    rc, out, _ = parse(text)
    assert rc == -1 and elapsed < 1.0 + SLACK_S
    assert_gone(token)


def test_env_secret_not_visible(monkeypatch):
    monkeypatch.setenv("ASTUNER_TEST_SECRET", "hunter2")
    code = "import os\nprint(os.environ.get('ASTUNER_TEST_SECRET'))\nprint(sorted(os.environ))\n"
    rc, out, _ = parse(run(code)[0])
    assert rc == 0 and "hunter2" not in out
    assert out.splitlines()[0] == "None"


def test_cwd_is_scratch_dir_and_removed():
    code = "import os\nprint(os.getcwd())\nprint(os.environ['HOME'])\nopen('note.txt', 'w').write('x')\n"
    rc, out, _ = parse(run(code)[0])
    cwd, home = out.splitlines()
    assert rc == 0 and cwd == home and cwd != os.getcwd()
    assert os.path.basename(cwd).startswith("astuner_py_")
    assert not os.path.exists(cwd)


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap")
def test_bwrap_traceback_is_the_same_in_every_sandbox():
    """A traceback names the program's path; under bwrap that path is fixed, so a rollout whose
    tool output holds a traceback reproduces exactly (two runs of one seed once differed here)."""
    limits = ToolLimits(isolation="bwrap")
    first, second = run("print(32 //  // 8)", limits)[0], run("print(32 //  // 8)", limits)[0]
    assert first == second
    assert f"/{BWRAP_SCRATCH_NAME}/main.py" in first and "SyntaxError" in first


def test_model_timeout_cannot_exceed_limit():
    text, elapsed = run("import time\ntime.sleep(30)\n", ToolLimits(timeout_s=1.0), timeout=100)
    rc, _, err = parse(text)
    assert rc == -1 and elapsed < 1.0 + SLACK_S
    assert "timeout of 1 seconds" in err


def test_model_timeout_may_lower_limit_and_extra_kwargs_ignored():
    text, elapsed = run("import time\ntime.sleep(30)\n", ToolLimits(timeout_s=10.0), timeout=0.5, sandbox=False)
    assert parse(text)[0] == -1 and elapsed < 0.5 + SLACK_S
    assert effective_timeout("nonsense", 3.0) == 3.0
    assert effective_timeout(-1, 3.0) == 3.0
    assert effective_timeout(float("inf"), 3.0) == 3.0


def test_stdin_is_empty():
    rc, out, _ = parse(run("import sys\nprint(repr(sys.stdin.read()))\n")[0])
    assert rc == 0 and out == "''\n"


def test_memory_bomb_hits_limit():
    code = "chunks = []\nwhile True:\n    chunks.append(bytearray(50 * 1024 * 1024))\n"
    text, elapsed = run(code, ToolLimits(timeout_s=5.0, memory_mb=256))
    rc, _, err = parse(text)
    assert rc != 0 and elapsed < 5.0 + SLACK_S
    assert "astuner: memory limit (256 MB) exceeded" in err


def test_normal_imports_work_under_limits():
    code = "import math, json, fractions, decimal, itertools\nprint(math.comb(10, 3))\n"
    assert parse(run(code)[0]) == (0, "120\n", "")


def test_limits_context_restores_default():
    with use_limits(ToolLimits(timeout_s=3.0)):
        assert current_limits().timeout_s == 3.0
    assert current_limits() == ToolLimits()


def test_bwrap_isolation_without_binary_fails_at_once(monkeypatch):
    """Explicit bwrap on a machine without it stops the rollout at ``use_limits``, not per call."""
    import shutil

    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="bwrap"):
        with use_limits(ToolLimits(isolation="bwrap")):
            pass
    with pytest.raises(ValueError, match="isolation"):
        ToolLimits(isolation="docker")


def test_same_format_as_agentscope_through_toolkit():
    from agentscope.message import ToolUseBlock
    from agentscope.tool import Toolkit
    from agentscope.tool import execute_python_code as agentscope_execute_python_code

    async def call(func, code):
        toolkit = Toolkit()
        toolkit.register_tool_function(func)
        block = ToolUseBlock(type="tool_use", id="call-1", name="execute_python_code", input={"code": code})
        last = None
        async for chunk in await toolkit.call_tool_function(block):
            last = chunk
        return toolkit.get_json_schemas(), last.content[0]["text"]

    with use_limits(ToolLimits(timeout_s=5.0)):
        ours_schema, ours = asyncio.run(call(execute_python_code, "print(1)"))
    theirs_schema, theirs = asyncio.run(call(agentscope_execute_python_code, "print(1)"))
    assert ours == theirs == "<returncode>0</returncode><stdout>1\n</stdout><stderr></stderr>"
    ours_params = ours_schema[0]["function"]["parameters"]
    theirs_params = theirs_schema[0]["function"]["parameters"]
    assert ours_params["required"] == theirs_params["required"] == ["code"]
    assert {k: v["type"] for k, v in ours_params["properties"].items()} == {
        k: v["type"] for k, v in theirs_params["properties"].items()
    }


def test_escaped_grandchild_does_not_block_return():
    """A descendant that leaves the process group neither holds the call up nor survives it
    (bwrap: the PID namespace dies; root callers: the dedicated uid is swept)."""
    duration, token = sleep_argument()
    code = f"import subprocess\np = subprocess.Popen(['sleep', '{duration}'], start_new_session=True)\n"
    text, elapsed = run(code, ToolLimits(timeout_s=5.0))
    rc, out, _ = parse(text)
    assert rc == 0 and elapsed < 2.0
    import shutil

    if os.getuid() == 0 or shutil.which("bwrap"):
        assert_gone(token)
    for pid in live_processes(token):  # non-root 'process' fallback: documented survivor
        os.kill(pid, 9)


def test_cancelled_call_kills_the_group():
    """An agent interrupted mid-call (task cancelled) must not leave the code running."""
    from astuner.tool.run import run_python

    tag = new_tag()

    async def go():
        code = tag_code(tag) + "import time\ntime.sleep(30)\n"
        task = asyncio.ensure_future(run_python(code, 10.0, ToolLimits(timeout_s=10.0)))
        deadline = time.monotonic() + 10
        while not live_processes(tag) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert live_processes(tag), "the program never started"
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(go())
    assert_gone(tag)


def test_rlimits_cover_memory_cpu_and_processes():
    import math

    from astuner.tool.limits import rlimits

    limits = rlimits(ToolLimits(timeout_s=2.5, memory_mb=512, max_processes=7), 2.5)
    assert limits["RLIMIT_AS"] == 512 * 1024 * 1024
    assert limits["RLIMIT_CPU"] == math.ceil(2.5) + 1 == 4
    assert limits["RLIMIT_NPROC"] >= 7
    assert limits["RLIMIT_CORE"] == 0


@pytest.mark.parametrize("code", [4, None, ["print(1)"], {"src": "print(1)"}])
def test_code_that_is_not_a_string_is_refused_not_run(code):
    response = asyncio.run(execute_python_code(code))
    text = response.content[0]["text"]
    assert text.startswith("Error: the argument `code` must be a string of Python source, not ")
    assert text.endswith("; nothing was run.") and "<returncode>" not in text
