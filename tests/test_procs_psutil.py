"""``astuner.procs`` on psutil: the process facts its kill logic relies on, against real processes.

Integration tier: every test starts child processes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from astuner import procs

pytestmark = pytest.mark.integration

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]
TREE = (
    "import subprocess, sys, time\n"
    "g = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
    "print(g.pid, flush=True)\n"
    "time.sleep(60)\n"
)
RENAMED = (
    "import ctypes, sys, time\n"
    "ctypes.CDLL(None).prctl(15, sys.argv[1].encode(), 0, 0, 0)\n"  # PR_SET_NAME: what `comm` shows
    "print('ready', flush=True)\n"
    "time.sleep(60)\n"
)


def _kernel_start_ticks(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])


@pytest.fixture
def started():
    running: list[subprocess.Popen] = []

    def start(command: list[str], **kwargs) -> subprocess.Popen:
        proc = subprocess.Popen(command, **kwargs)
        running.append(proc)
        return proc

    yield start
    for proc in running:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def test_start_time_is_the_kernels_tick_count_and_agrees_with_psutil(started):
    proc = started(SLEEPER)
    ticks = procs._start_time(proc.pid)
    assert ticks == _kernel_start_ticks(proc.pid)
    seconds_since_boot = psutil.Process(proc.pid).create_time() - psutil.boot_time()
    assert abs(ticks / os.sysconf("SC_CLK_TCK") - seconds_since_boot) < 1.5  # boot time is whole seconds
    assert procs._start_time(2**22 + 12345) is None


def test_a_record_written_by_an_earlier_version_is_still_recognised(started, tmp_path, monkeypatch):
    """Records before psutil held the same tick count; they must stay live and killable."""
    monkeypatch.setenv("ASTUNER_PROCS_DIR", str(tmp_path))
    proc = started(SLEEPER, start_new_session=True)
    old_run = f"{os.getpid()}:{_kernel_start_ticks(os.getpid())}"
    record = {"pid": proc.pid, "pgid": proc.pid, "start_time": _kernel_start_ticks(proc.pid), "uid": os.getuid(),
              "tag": "old_server", "command": SLEEPER, "kind": "", "extra": {}, "run": old_run, "registered_at": 1.0}
    (tmp_path / f"old_server-{proc.pid}.json").write_text(json.dumps(record))
    assert [rec["pid"] for _, rec in procs.records()] == [proc.pid]
    assert procs.run_alive(old_run)
    assert procs.kill("old_server", grace_s=5).pids == [proc.pid]
    assert proc.wait(timeout=10) is not None
    assert list(tmp_path.glob("*.json")) == []


def test_descendants_breadth_first_and_zombies(started):
    parent = started([sys.executable, "-c", TREE], stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    assert procs.descendants(parent.pid) == [child]
    mine = procs.descendants(os.getpid())
    assert mine.index(parent.pid) < mine.index(child)  # children before grandchildren
    zombie = started([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and psutil.Process(zombie.pid).status() != psutil.STATUS_ZOMBIE:
        time.sleep(0.05)
    assert procs._is_zombie(zombie.pid)
    assert not procs._is_zombie(parent.pid)
    assert procs._is_zombie(2**22 + 12345)


def test_ancestors_and_uid():
    ancestors = procs._ancestors()
    assert os.getpid() in ancestors and 1 not in ancestors
    if os.getppid() > 1:
        assert os.getppid() in ancestors
    assert procs._uid(os.getpid()) == os.geteuid()
    assert procs._uid(2**22 + 12345) is None


def test_foreign_ray_daemons_found_by_process_name(started):
    fake = started([sys.executable, "-c", RENAMED, "raylet"], stdout=subprocess.PIPE, text=True)
    assert fake.stdout.readline().strip() == "ready"
    assert fake.pid in procs.foreign_ray_daemons(set())
    assert fake.pid not in procs.foreign_ray_daemons({fake.pid})
    other = started([sys.executable, "-c", RENAMED, "not_a_raylet"], stdout=subprocess.PIPE, text=True)
    assert other.stdout.readline().strip() == "ready"
    assert other.pid not in procs.foreign_ray_daemons(set())


def test_group_members_lists_the_whole_group(started):
    leader = started([sys.executable, "-c", TREE], stdout=subprocess.PIPE, text=True, start_new_session=True)
    member = int(leader.stdout.readline())
    assert sorted(procs._group_members(leader.pid)) == sorted([leader.pid, member])
