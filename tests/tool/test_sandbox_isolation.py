"""How sandboxes are described and built, without running programs: command lines, hidden
directories, dedicated uids, limits from the config, result markers, the warning's wording; and the
caller-side helpers of the fallback: the scratch dir's size and removal, killing a process tree."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from astuner.tool import ToolLimits, isolation, reap, scratch
from astuner.tool.limits import rlimits
from astuner.tool.output import CappedBuffer
from astuner.tool.run import limit_notes

pytestmark = pytest.mark.integration


def test_hidden_dirs_cover_temp_dirs_home_and_closed_ancestors(tmp_path, monkeypatch):
    home = "/etc"  # any existing directory outside the temp dirs (a checkout may itself lie under /tmp)
    monkeypatch.setenv("HOME", home)
    closed = tmp_path / "closed"
    (closed / "py" / "bin").mkdir(parents=True)
    closed.chmod(0o700)
    hidden = isolation.hidden_dirs([str(closed / "py")])
    assert "/tmp" in hidden and os.path.realpath(home) in hidden
    assert not any(h != k and h.startswith(k + "/") for h in hidden for k in hidden), "nested dirs are dropped"
    first_closed = isolation._closed_ancestor(str(closed / "py"))
    assert first_closed and (str(closed) + "/").startswith(first_closed + "/")
    assert not os.stat(first_closed).st_mode & 0o001
    assert isolation.rebinds([str(closed / "py"), "/usr/lib"], [str(closed)]) == [str(closed / "py")]


def test_interpreter_dirs_hold_the_executable_and_the_standard_library():
    dirs = isolation.interpreter_dirs()
    exe = os.path.realpath(sys.executable)
    stdlib = os.path.realpath(os.path.dirname(os.__file__))
    assert any(exe.startswith(d + "/") for d in dirs)
    assert any(stdlib.startswith(d + "/") for d in dirs)


def test_bwrap_command_line_isolates_everything_the_docstring_promises():
    spec = isolation.worker_spec("bwrap", 64, uid=None if os.getuid() else isolation.UID_BASE)
    argv = spec.argv
    for flag in ("--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--die-with-parent", "--new-session"):
        assert flag in argv
    i = argv.index("--ro-bind")
    assert argv[i : i + 3] == ["--ro-bind", "/", "/"]
    tmp = argv.index("/tmp", i)
    assert argv[tmp - 1] == "--tmpfs"
    if "--size" in isolation.bwrap_options(argv[0]):
        assert argv[tmp - 5 : tmp] == ["--perms", "1777", "--size", str(64 << 20), "--tmpfs"]
    config = json.loads(argv[-1])
    assert config["mode"] == "bwrap" and config["scratch"] == spec.scratch
    assert spec.env["HOME"] == spec.scratch and "PYTHONPATH" not in spec.env


def test_process_command_line_starts_the_supervisor_directly():
    spec = isolation.worker_spec("process", 64, uid=None)
    assert spec.argv[:6] == [sys.executable, "-I", "-u", "-X", "utf8", "-c"]
    config = json.loads(spec.argv[-1])
    assert config["parent_pid"] == os.getpid() and config["overlays"]


def test_child_env_is_an_allow_list(monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    monkeypatch.setenv("PYTHONPATH", "/evil")
    env = isolation.child_env("/tmp/astuner_py_x")
    assert set(env) <= {"PATH", "LANG", "LC_ALL", "PYTHONIOENCODING", "PYTHONUTF8", "HOME", "TMPDIR",
                        "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "MALLOC_ARENA_MAX"}
    assert env["HOME"] == env["TMPDIR"] == "/tmp/astuner_py_x"


@pytest.mark.skipif(os.getuid() != 0, reason="dedicated uids are for root callers")
def test_uid_leases_are_exclusive_across_instances():
    a, b = isolation.UidLeases(), isolation.UidLeases()
    b._cursor = a._cursor  # make them race for the same slots
    taken_a = {a.acquire() for _ in range(5)}
    taken_b = {b.acquire() for _ in range(5)}
    assert not taken_a & taken_b
    assert all(isolation.UID_BASE <= u < isolation.UID_BASE + isolation.UID_SLOTS for u in taken_a | taken_b)
    for uid in taken_a | taken_b:
        (a if uid in taken_a else b).release(uid)
    c = isolation.UidLeases()
    c._cursor = a._cursor - 5
    assert c.acquire() in taken_a  # released slots are free for others again
    c.forget()


def test_gaps_name_what_the_fallback_lacks():
    text = "; ".join(isolation.gaps("process", {"net": False, "mounts": False, "dedicated": False, "nproc_scope": "user"}))
    assert "network" in text and "home" in text and "setsid" in text and "seccomp" in text
    assert "network" not in "; ".join(isolation.gaps("bwrap", {"dedicated": True}))


def test_limits_from_config_block():
    from astuner.config.schema import PythonToolConfig

    limits = ToolLimits.from_config(PythonToolConfig())
    assert limits == ToolLimits(), "the config's defaults and ToolLimits' defaults must agree"
    custom = ToolLimits.from_config(PythonToolConfig(timeout_s=3, pool_size=0, isolation="process"))
    assert (custom.timeout_s, custom.pool_size, custom.isolation, custom.memory_mb) == (3, 0, "process", 1024)
    with pytest.raises(ValueError, match="pool_size"):
        ToolLimits(pool_size=-1)
    with pytest.raises(ValueError, match="scratch_mb"):
        ToolLimits(scratch_mb=0)


def test_rlimits_are_derived_from_the_limits():
    r = rlimits(ToolLimits(max_open_files=99, max_file_mb=3), 7.2)
    assert r["RLIMIT_NOFILE"] == 99 and r["RLIMIT_FSIZE"] == 3 << 20 and r["RLIMIT_CPU"] == 9


def test_limit_notes_name_the_limit():
    limits = ToolLimits(memory_mb=100, max_file_mb=5, scratch_mb=7, max_processes=9, max_open_files=11)
    assert limit_notes(0, "MemoryError", limits, 3) == []
    assert limit_notes(-signal.SIGXCPU, "", limits, 3) == ["astuner: killed: CPU time limit (3 s) exceeded"]
    assert limit_notes(1, "Traceback\nMemoryError\n", limits, 3) == ["astuner: memory limit (100 MB) exceeded"]
    full = limit_notes(1, "OSError: [Errno 28] No space left on device\n", limits, 3)
    assert full == ["astuner: scratch space limit (7 MB) exceeded"]
    assert limit_notes(1, "RuntimeError: can't start new thread\n", limits, 3)[0].startswith("astuner: process limit (9")
    assert limit_notes(-signal.SIGSEGV, "", limits, 3) == ["astuner: killed by SIGSEGV (the memory limit is 100 MB)"]


def test_capped_buffer_keeps_head_and_tail():
    buf = CappedBuffer(10)
    for chunk in (b"HEAD-", b"x" * 100, b"-TAIL"):
        buf.feed(chunk)
    text = buf.text("stdout")
    assert text.startswith("HEAD-") and text.endswith("-TAIL") and "100 of 110 bytes cut" in text


def test_capped_buffer_memory_stays_bounded_whatever_arrives():
    buf = CappedBuffer(2000)
    for _ in range(64):
        buf.feed(b"y" * (1 << 20))  # the pipe reader's largest read
        assert len(buf.head) + len(buf.tail) <= 2000 + (1 << 20)
    assert len(buf.text("stderr")) < 2200 and "[astuner: stderr truncated: " in buf.text("stderr")


def test_gaps_and_protections_of_the_bare_fallback_name_each_item():
    info = {"net": False, "mounts": False, "dedicated": False, "uid": 0, "nproc_scope": "user",
            "unshare_error": "Operation not permitted"}
    protected = "; ".join(isolation.protections(info))
    assert "stdout and of stderr each" in protected and f"checked every {scratch.POLL_S:g} s" in protected
    assert "max_processes" not in protected, "root is not held to RLIMIT_NPROC"
    lacking = "; ".join(isolation.gaps("process", info))
    for item in ("Operation not permitted", "files outside the scratch dir", "overshoot", "/proc/<pid>/fd",
                 "killed the supervisor first", "root is exempt", "GPUs", "seccomp", "CPU share"):
        assert item in lacking, item
    with_tmpfs = "; ".join(isolation.protections({**info, "mounts": True, "nproc_scope": "sandbox"}))
    assert "private tmpfs of scratch_mb" in with_tmpfs and "max_processes" in with_tmpfs


def test_scratch_usage_counts_blocks_and_entries_without_following_links(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "big").write_bytes(b"x" * (1 << 20))
    top = tmp_path / "scratch"
    (top / "d").mkdir(parents=True)
    for i in range(10):
        (top / "d" / f"empty{i}").touch()
    (top / "link").symlink_to(outside)
    used = scratch.usage(str(top), 1 << 30)
    assert 12 * scratch.ENTRY_BYTES <= used < (1 << 20), "ten empty files, a dir and a link; the link's target is not counted"
    assert scratch.usage(str(top), 3 * scratch.ENTRY_BYTES) == 4 * scratch.ENTRY_BYTES, "stops once over"
    assert scratch.usage(str(tmp_path / "missing"), 0) == 0
    assert scratch.usage(str(top / "link"), 0) == 0, "a scratch dir replaced by a symlink is not followed"


def test_scratch_remove_takes_closed_directories_and_spares_link_targets(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("kept")
    top = tmp_path / "scratch"
    (top / "a" / "b").mkdir(parents=True)
    (top / "a" / "b" / "f").write_text("x")
    (top / "a" / "link").symlink_to(outside)
    for d in (top / "a" / "b", top / "a"):
        d.chmod(0)
    scratch.remove(str(top))
    assert not top.exists() and (outside / "keep").read_text() == "kept"
    linked = tmp_path / "linked"
    linked.symlink_to(outside)
    scratch.remove(str(linked))
    assert (outside / "keep").read_text() == "kept"


def test_kill_descendants_reaches_orphans_in_other_sessions():
    """A child subreaper (the supervisor's role) with two setsid'd children, each with a child of its
    own; one middle process exits, so its child is an orphan the root adopted. The whole tree dies,
    the root lives."""
    code = (
        "import ctypes, os, time\nctypes.CDLL(None).prctl(36, 1, 0, 0, 0)\n"
        "for keep_middle in (False, True):\n    if os.fork() == 0:\n        os.setsid()\n"
        "        if os.fork() == 0:\n            time.sleep(60)\n        if keep_middle:\n            time.sleep(60)\n"
        "        os._exit(0)\nos.wait()\nprint('ready', flush=True)\ntime.sleep(60)\n"
    )
    root = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    try:
        assert root.stdout.readline() == b"ready\n"
        deadline = time.monotonic() + 5
        while len(reap.descendants(root.pid)) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(reap.descendants(root.pid)) == 3
        assert reap.kill_descendants(root.pid) >= 3
        assert reap.descendants(root.pid) == [] and root.poll() is None
    finally:
        root.kill()
        root.wait()
