"""``astuner --kill`` ends only what astuner started (docs/architecture.md, contract 7), through the real CLI.

The CLI runs in a subprocess. Processes: a decoy ``python`` that astuner did not start (must survive
``--kill=python``); a worker astuner started with ``astuner.procs.spawn`` plus its child and a
grandchild that left the process group with ``setsid`` (all must end — the grandchild is only
reachable through the /proc walk); the test process itself registered under a matching tag (the
caller's ancestor: must survive); and, when running as root, a registered process that now belongs
to another user (must survive).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from astuner import procs
from tests.conftest import REPO

pytestmark = pytest.mark.integration

TREE = (
    "import os, subprocess, sys, time\n"
    "sys.stdout.write(str(os.getpid()) + '\\n')\n"
    "child = subprocess.Popen([sys.executable, '-c', "
    "'import os, subprocess, sys, time; os.setsid(); "
    "g = subprocess.Popen([sys.executable, \"-c\", \"import time; time.sleep(120)\"]); "
    "open(sys.argv[1], \"w\").write(str(os.getpid()) + \" \" + str(g.pid)); time.sleep(120)', sys.argv[1]])\n"
    "time.sleep(120)\n"
)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def _wait_for(path: Path, timeout: float = 20) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return path.read_text()
        time.sleep(0.05)
    raise AssertionError(f"{path} was not written")


def test_kill_python_ends_our_tree_and_spares_everything_else(tmp_path, monkeypatch):
    monkeypatch.setenv("ASTUNER_PROCS_DIR", str(tmp_path / "procs"))
    decoy = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], start_new_session=True)
    others: list[subprocess.Popen] = [decoy]
    try:
        ours = procs.spawn([sys.executable, "-c", TREE, str(tmp_path / "tree")], "worker", log_path=tmp_path / "w.log")
        others.append(ours)
        child, grandchild = map(int, _wait_for(tmp_path / "tree").split())
        assert os.getpgid(child) != ours.pid  # left the group: only the /proc walk finds it
        procs.register(os.getpid(), "pytest-python", [sys.executable, "pytest"])
        if os.getuid() == 0:
            foreign = subprocess.Popen(["sleep", "120"], user=65534, start_new_session=True)
            others.append(foreign)
            procs.register(foreign.pid, "python-other-user", [sys.executable, "-c", "sleep"])

        done = subprocess.run([sys.executable, "launcher.py", "--kill=python"], cwd=REPO, capture_output=True,
                              text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)})
        assert done.returncode == 0, done.stderr
        assert f"killed 1 astuner-started process(es): [{ours.pid}]" in done.stdout
        ours.wait(timeout=10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (_alive(child) or _alive(grandchild)):
            time.sleep(0.1)
        assert not _alive(child) and not _alive(grandchild), "a descendant of an astuner-started process survived"
        time.sleep(0.3)
        assert decoy.poll() is None, "a python process astuner did not start was killed"
        assert _alive(os.getpid())
        if os.getuid() == 0:
            assert others[-1].poll() is None, "another user's process was killed"
            assert "another user" in done.stdout
    finally:
        for p in others:
            if p.poll() is None:
                p.kill()
                p.wait()


def test_kill_without_a_match_touches_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("ASTUNER_PROCS_DIR", str(tmp_path / "procs"))
    ours = procs.spawn([sys.executable, "-c", "import time; time.sleep(60)"], "logview")
    try:
        assert procs.kill("vllm|ray").pids == []
        assert ours.poll() is None
        assert procs.kill_registered("logview") == [ours.pid]
        assert ours.wait(timeout=10) is not None
    finally:
        if ours.poll() is None:
            ours.kill()


def test_stale_records_are_dropped_not_signalled(tmp_path, monkeypatch):
    monkeypatch.setenv("ASTUNER_PROCS_DIR", str(tmp_path / "procs"))
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    (tmp_path / "procs").mkdir(exist_ok=True)
    (tmp_path / "procs" / f"python-{gone.pid}.json").write_text(
        '{"pid": %d, "pgid": %d, "start_time": 1, "uid": %d, "tag": "python", "command": []}'
        % (gone.pid, gone.pid, os.getuid())
    )
    assert procs.kill_registered("python") == []
    assert list((tmp_path / "procs").glob("*.json")) == []


@pytest.mark.parametrize("flag", ["--autokill"])
def test_autokill_is_the_upstream_keyword_set(tmp_path, monkeypatch, flag):
    monkeypatch.setenv("ASTUNER_PROCS_DIR", str(tmp_path / "procs"))
    vllm_like = procs.spawn([sys.executable, "-c", "import time; time.sleep(60)"], "vllm_server")
    try:
        from astuner.cli import main

        assert main([flag]) == 0
        assert vllm_like.wait(timeout=10) is not None
    finally:
        if vllm_like.poll() is None:
            vllm_like.kill()


def _autokill_cli() -> subprocess.CompletedProcess:
    """``astuner --autokill`` as a new run (no ``$ASTUNER_RUN`` inherited from the test)."""
    env = {k: v for k, v in os.environ.items() if k != procs.RUN_ENV}
    return subprocess.run([sys.executable, "launcher.py", "--autokill"], cwd=REPO, capture_output=True, text=True,
                          timeout=120, env={**env, "PYTHONPATH": str(REPO)})


def test_autokill_spares_a_live_runs_processes_and_clears_a_dead_runs(tmp_path, monkeypatch):
    """Two runs of one user: the second's --autokill must not end the first's vLLM server while the
    first is alive, and must end it once the first run has died without cleaning up."""
    monkeypatch.setenv("ASTUNER_PROCS_DIR", str(tmp_path / "procs"))
    owner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])  # the first run's main process
    server = None
    try:
        with open(f"/proc/{owner.pid}/stat") as f:
            start = f.read().rsplit(")", 1)[1].split()[19]
        monkeypatch.setenv(procs.RUN_ENV, f"{owner.pid}:{start}")
        server = procs.spawn([sys.executable, "-c", "import time; time.sleep(120)"], "vllm_server")
        assert procs.find(tag="vllm_server")[0]["run"] == f"{owner.pid}:{start}"

        done = _autokill_cli()
        assert done.returncode == 0, done.stderr
        assert f"kept pid {server.pid} (vllm_server): the run that started it (pid {owner.pid}) is still alive" in done.stdout
        time.sleep(0.3)
        assert server.poll() is None, "--autokill ended a live run's process"

        owner.kill()
        owner.wait()
        done = _autokill_cli()
        assert done.returncode == 0, done.stderr
        assert f"killed 1 astuner-started process(es): [{server.pid}]" in done.stdout
        assert server.wait(timeout=10) is not None
    finally:
        for p in (owner, server):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()


def test_plain_kill_reaches_live_runs_too(tmp_path, monkeypatch):
    monkeypatch.setenv("ASTUNER_PROCS_DIR", str(tmp_path / "procs"))
    owner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        with open(f"/proc/{owner.pid}/stat") as f:
            start = f.read().rsplit(")", 1)[1].split()[19]
        monkeypatch.setenv(procs.RUN_ENV, f"{owner.pid}:{start}")
        server = procs.spawn([sys.executable, "-c", "import time; time.sleep(120)"], "vllm_server")
        monkeypatch.delenv(procs.RUN_ENV)
        assert procs.kill("vllm").pids == [server.pid]  # --kill KEYWORDS: every run of this user
        assert server.wait(timeout=10) is not None
    finally:
        owner.kill()
        owner.wait()
