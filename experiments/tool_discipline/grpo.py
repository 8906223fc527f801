"""The GRPO phase: the documented ``--backbone=local`` command, run as a child process with a deadline.

Why a child process: the phase is exactly what a user runs (``python launcher.py --conf
tutorial/example_math_agent/tool_discipline.yaml --backbone=local KEY=VALUE ...``, the same entry
point as ``astuner``), and a child can be stopped at a deadline. The GPU run must finish inside one
10-minute device call; if GRPO would overrun, it is ended and the report uses the newest
validation the run logged (``trainer_common.test_freq``), saying how many steps it got.

Stopping: SIGTERM to the child's process group, SIGKILL after a grace period, until the group is
empty (``server_guard.stop_process_group``). The sandboxes of the Python tool run in sessions of
their own, so the group signal does not reach them; they end with the trainer through their
parent-death signal and ``--die-with-parent``. This experiment uses the transformers engine, so no
``vllm serve`` is involved (a vllm engine's server would be stopped by the trainer's own SIGTERM
handler, not by a SIGKILL).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from astuner.engine.server_guard import stop_process_group

REPO = Path(__file__).resolve().parents[2]
STOP_GRACE_S = 15.0
"""Seconds between SIGTERM and SIGKILL when the deadline stops the run."""


def command(config: Path, exp_dir: Path, overrides: list[str]) -> list[str]:
    """The argv of the GRPO run (``launcher.py`` is the ``astuner`` entry point)."""
    return [sys.executable, str(REPO / "launcher.py"), "--conf", str(config), "--backbone=local",
            "--exp-dir", str(exp_dir), *overrides]


def run(argv: list[str], timeout_s: float | None = None, threads: int = 0) -> tuple[int, bool]:
    """Run ``argv`` from the repository root; returns (exit code, whether the deadline stopped it).
    ``threads`` > 0 caps the child's torch/OpenMP threads (``OMP_NUM_THREADS``)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "AGENTSCOPE_DISABLE_CONSOLE_OUTPUT": "true"}
    if threads > 0:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(threads)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    proc = subprocess.Popen(argv, cwd=REPO, env=env, start_new_session=True)
    try:
        code = proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        stop_process_group(proc, grace_s=STOP_GRACE_S)
        return proc.returncode, True
    except BaseException:
        stop_process_group(proc, grace_s=STOP_GRACE_S)
        raise
    stop_process_group(proc, grace_s=STOP_GRACE_S)
    return code, False
