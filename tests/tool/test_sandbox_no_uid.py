"""The 'process' fallback without a dedicated uid (what a non-root caller gets): hostile families
that used to leave processes behind are all ended after the call, through the supervisor's child
subreaper. Run as root too: the pool's uid leases are switched off, so the supervisor runs as the
caller and only its session kill and the subreaper stand between the program and the host.

Each program is tagged (its process name, inherited by forks) and starts descendants that leave
its session or group (setsid, double forks, raw ``fork`` through ctypes, a multiprocessing pool)
and keep working after the program has returned (sleeping, flooding stderr, creating files); the
test asserts that none is alive shortly after the call returns.
"""

from __future__ import annotations

import pytest

from astuner.tool import ToolLimits
from astuner.tool import pool as pool_module
from astuner.tool.run import shutdown
from tests.tool.test_sandbox_support import assert_gone, new_tag, run_sandbox, tag_code

pytestmark = pytest.mark.integration

FAMILIES = {
    "setsid_double_fork_daemon": (
        "import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n        time.sleep(60)\n"
        "    os._exit(0)\nprint('detached')\n"
    ),
    "raw_ctypes_forks_in_new_sessions": (
        "import ctypes, os, time\nlibc = ctypes.CDLL(None)\nfor _ in range(20):\n    if libc.fork() == 0:\n"
        "        libc.setsid()\n        libc.fork()\n        time.sleep(60)\n        os._exit(0)\nprint('forked')\n"
    ),
    "multiprocessing_pool_left_running": (
        "import multiprocessing as mp, os, time\n"
        "def work(_):\n    os.setsid()\n    time.sleep(60)\n"
        "if __name__ == '__main__':\n    p = mp.get_context('fork').Pool(4)\n    p.map_async(work, range(8))\n"
        "    time.sleep(0.3)\n    os._exit(0)\n"
    ),
    "stderr_flood_after_exit": (
        "import os, sys\nif os.fork() == 0:\n    os.setsid()\n    while True:\n        try:\n"
        "            sys.stderr.write('x' * 65536)\n        except Exception:\n            pass\nprint('bye')\n"
    ),
    "file_flood_after_exit": (
        "import os\nif os.fork() == 0:\n    os.setsid()\n    i = 0\n    while True:\n        i += 1\n        try:\n"
        "            open(f'f{i % 5000}', 'w').write('y' * 4096)\n        except OSError:\n            pass\nprint('bye')\n"
    ),
}


@pytest.fixture(autouse=True)
def _no_dedicated_uid(monkeypatch):
    """A fresh sandbox service whose supervisors run as the caller (no uid lease), as for non-root."""
    shutdown()
    monkeypatch.setattr(pool_module, "UidLeases", lambda: None)
    yield
    shutdown()


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_no_descendant_outlives_the_call(family):
    tag = new_tag()
    result, _ = run_sandbox(tag_code(tag) + FAMILIES[family], ToolLimits(timeout_s=3.0, isolation="process"))
    assert result.uid is None and result.isolation == "process", result
    assert_gone(tag=tag, within_s=3.0)
