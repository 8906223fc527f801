"""Output and disk floods against the sandbox, in the fallbacks that lack bubblewrap's namespaces.

Three ways to run a program, each a fresh sandbox service:

* ``bwrap``: bubblewrap, for comparison (skipped where it is not installed);
* ``no_uid``: the ``process`` fallback without a dedicated uid (what a non-root caller gets): the
  program runs as the caller, with a mount namespace where the kernel grants one;
* ``bare``: the ``process`` fallback with neither a uid nor namespaces, as in a GPU container that
  withholds CAP_SYS_ADMIN: each supervisor is started through a wrapper that drops CAP_SYS_ADMIN
  from its bounding set before ``exec``, so ``unshare`` fails and the scratch dir lies on the host
  disk (root only: dropping a capability needs CAP_SETPCAP).

For every program: the caps hold (each stream's output truncated with the cut stated in the tool's
reply; one file stops at ``max_file_mb``; the scratch dir at ``scratch_mb``), the call returns
shortly after its timeout, no process of the program survives, and no scratch dir stays on the host.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import sys
import warnings

import pytest

from astuner.tool import ToolLimits
from astuner.tool import pool as pool_module
from astuner.tool.run import shutdown
from tests.tool.test_sandbox_support import assert_gone, assert_no_survivors, new_tag, parse, run_sandbox, run_tool, tag_code

pytestmark = [pytest.mark.integration, pytest.mark.filterwarnings("ignore:astuner python tool:RuntimeWarning")]

ROOT = os.getuid() == 0
SLACK_S = 2.0
"""Beyond the timeout: each test starts a fresh service, so a cold sandbox start is included."""
CAP = 2000
"""``max_output_chars`` of these tests."""
PR_CAPBSET_DROP, CAP_SYS_ADMIN = 24, 21
DROP_SYS_ADMIN = (
    "import ctypes, os, sys\n"
    f"assert ctypes.CDLL(None).prctl({PR_CAPBSET_DROP}, {CAP_SYS_ADMIN}, 0, 0, 0) == 0\n"
    "os.execv(sys.argv[1], sys.argv[1:])\n"
)
BARE = pytest.param("bare", marks=pytest.mark.skipif(not ROOT, reason="dropping CAP_SYS_ADMIN needs root"))
VARIANTS = [
    pytest.param("bwrap", marks=pytest.mark.skipif(shutil.which("bwrap") is None, reason="bwrap is not installed")),
    "no_uid",
    BARE,
]


@pytest.fixture(params=VARIANTS)
def variant(request, monkeypatch) -> str:
    """A fresh sandbox service set up as the variant says; shut down after the test."""
    shutdown()
    if request.param != "bwrap":
        monkeypatch.setattr(pool_module, "UidLeases", lambda: None)
    if request.param == "bare":
        real_spec = pool_module.worker_spec

        def without_namespaces(mode, scratch_mb, uid):
            spec = real_spec(mode, scratch_mb, uid)
            return dataclasses.replace(spec, argv=[sys.executable, "-I", "-c", DROP_SYS_ADMIN, *spec.argv])

        monkeypatch.setattr(pool_module, "worker_spec", without_namespaces)
    yield request.param
    shutdown()


def limits(variant: str, **values) -> ToolLimits:
    return ToolLimits(isolation="bwrap" if variant == "bwrap" else "process", pool_size=0, max_output_chars=CAP,
                      **values)


def run_contained(variant: str, body: str, **values):
    """Run ``body`` tagged; check the common properties; return the result for the specific ones."""
    tag = new_tag()
    lim = limits(variant, **values)
    result, elapsed = run_sandbox(tag_code(tag) + body, lim)
    assert result.isolation == lim.isolation
    if variant != "bwrap":
        assert result.uid is None and not result.info["dedicated"]
    if variant == "bare":
        assert not result.info["mounts"] and result.info["scratch_on_host"], result.info
    assert elapsed < lim.timeout_s + SLACK_S, f"took {elapsed:.2f} s"
    assert_no_survivors(result, tag)
    assert not os.path.exists(result.info["scratch"]) or not result.info["scratch_on_host"], "scratch dir left on the host"
    return result


FLOOD = (
    "import os, sys\nstream = sys.{stream}\nif os.fork() == 0:\n    os.setsid()\n"
    "while True:\n    try:\n        stream.write('x' * 65536)\n    except Exception:\n        pass\n"
)
"""A program and a detached child of it (own session) writing one stream for ever."""


@pytest.mark.parametrize("stream", ["stdout", "stderr"])
def test_endless_flood_of_one_stream_is_capped_and_said_in_the_reply(variant, stream):
    tag = new_tag()
    lim = limits(variant, timeout_s=2.0)
    text, elapsed = run_tool(tag_code(tag) + FLOOD.format(stream=stream), lim)
    rc, out, err = parse(text)
    flooded, quiet = (out, err) if stream == "stdout" else (err, out)
    assert rc == -1 and elapsed < lim.timeout_s + SLACK_S
    assert f"[astuner: {stream} truncated: " in flooded and "bytes cut, first 1000 and last 1000 kept]" in flooded
    assert len(flooded) < CAP + 300
    assert "truncated" not in quiet
    assert err.rstrip().endswith("TimeoutError: The code execution exceeded the timeout of 2 seconds.")
    assert_gone(tag=tag, within_s=3.0)


def test_both_streams_flooded_then_exit_keep_head_tail_and_exit_code(variant):
    body = (
        "import sys\nfor s in (sys.stdout, sys.stderr):\n    s.write('HEAD')\n"
        "for _ in range(20):\n    sys.stdout.write('o' * (1 << 20))\n    sys.stderr.write('e' * (1 << 20))\n"
        "for s in (sys.stdout, sys.stderr):\n    s.write('TAIL')\n"
    )
    r = run_contained(variant, body, timeout_s=10.0)
    assert r.returncode == 0 and not r.timed_out
    for name, text in (("stdout", r.stdout), ("stderr", r.stderr)):
        assert text.startswith("HEAD") and text.endswith("TAIL") and len(text) < CAP + 300
        assert f"[astuner: {name} truncated: {20 * (1 << 20) + 8 - CAP} of {20 * (1 << 20) + 8} bytes cut" in text


def test_one_huge_file_stops_at_max_file_mb(variant):
    body = "with open('big', 'wb') as f:\n    while True:\n        f.write(b'x' * (1 << 20))\n"
    r = run_contained(variant, body, timeout_s=5.0, max_file_mb=8)
    assert r.returncode == 1 and "File too large" in r.stderr
    assert r.notes == ["astuner: file size limit (8 MB) exceeded"]


def test_many_files_stop_at_scratch_mb(variant):
    """A tmpfs ends the flood with ENOSPC; on the host disk the caller's size check kills it."""
    body = "i = 0\nwhile True:\n    open(f'f{i}', 'wb').write(b'x' * (4 << 20))\n    i += 1\n"
    r = run_contained(variant, body, timeout_s=8.0, max_file_mb=8, scratch_mb=32)
    assert not r.timed_out
    assert r.notes in (["astuner: scratch space limit (32 MB) exceeded"], ["astuner: killed: scratch space limit (32 MB) exceeded"])
    if r.info.get("scratch_on_host"):
        assert r.returncode == -9 and r.notes[0].startswith("astuner: killed:")
    else:
        assert r.returncode == 1 and "No space left on device" in r.stderr


@pytest.mark.parametrize("variant", [BARE], indirect=True)
def test_empty_file_flood_on_the_host_disk_stops_at_scratch_mb(variant):
    """Every entry counts at least 4 KiB on the host disk, so files of no size still hit the cap
    (on a tmpfs they take no blocks and run to the timeout: documented, not tested)."""
    body = "import os\nos.mkdir('d')\ni = 0\nwhile True:\n    open(f'd/f{i}', 'wb').close()\n    i += 1\n"
    r = run_contained(variant, body, timeout_s=8.0, scratch_mb=8)
    assert r.returncode == -9 and r.notes == ["astuner: killed: scratch space limit (8 MB) exceeded"]


def test_file_flood_by_a_detached_child_after_the_program_returned(variant):
    body = (
        "import os\nif os.fork() == 0:\n    os.setsid()\n    i = 0\n    while True:\n        try:\n"
        "            open(f'f{i % 2000}', 'wb').write(b'y' * 65536)\n        except OSError:\n            pass\n"
        "        i += 1\nprint('bye')\n"
    )
    r = run_contained(variant, body, timeout_s=3.0)
    assert r.returncode == 0 and r.stdout == "bye\n"


def test_timed_out_program_leaves_no_detached_daemon(variant):
    """The caller kills the program's tree while the supervisor still adopts its orphans; killing
    the supervisor first let a setsid daemon of a timed-out program outlive the call."""
    body = (
        "import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n        time.sleep(60)\n"
        "    os._exit(0)\nprint('detached', flush=True)\ntime.sleep(60)\n"
    )
    r = run_contained(variant, body, timeout_s=1.5)
    assert r.timed_out and r.stdout == "detached\n"


def test_closed_directories_in_the_scratch_dir_are_removed(variant):
    body = (
        "import os\nos.makedirs('a/b/c')\nopen('a/b/c/f', 'wb').write(b'z' * 4096)\n"
        "for d in ('a/b/c', 'a/b', 'a'):\n    os.chmod(d, 0)\nprint('closed')\n"
    )
    r = run_contained(variant, body, timeout_s=3.0)
    assert r.returncode == 0 and r.stdout == "closed\n"


@pytest.mark.parametrize("variant", [BARE], indirect=True)
def test_warning_says_what_the_bare_fallback_protects_and_what_not(variant):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r = run_contained(variant, "print(1)", timeout_s=5.0)
    assert r.stdout == "1\n"
    (message,) = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    protected, _, unprotected = message.partition("NOT protected:")
    for item in ("every process it started is killed", "max_output_chars bytes of stdout and of stderr each",
                 "max_file_mb per file", "scratch_mb for its scratch dir on the host disk"):
        assert item in protected, item
    for item in ("network", "files outside the scratch dir", "can overshoot scratch_mb", "runs as the caller",
                 "/proc/<pid>/fd", "unless the code killed the supervisor first", "root is exempt from RLIMIT_NPROC",
                 "seccomp"):
        assert item in unprotected, item
