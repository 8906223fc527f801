"""The issue-16 runs as a GPU-tier test: ``benchmarks/trinity_gpu.sh`` stages, a few steps each.

GPU only (skipped elsewhere, CI included), and only where the stack is installed the way the
script's ``install`` stage does it (``/tmp/site``: trinity-rft, vLLM, Ray) and an SFT checkpoint with
its data exists (``ASTUNER_GPU_TD``, default ``/tmp/tdc``: ``sft/model`` and ``data/{train,val}.jsonl``,
e.g. the tool-discipline experiment's output). One command on such a machine:

    python -m pytest tests/backbone/trinity/test_trinity_gpu.py -m gpu

Each stage must exit 0, train the asked steps and leave no Ray or vLLM process (the script's ``ps``
check). The numbers themselves go to ``docs/results/trinity_gpu.md`` through
``benchmarks/trinity_gpu_report.py``, not into assertions.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.gpu

TD = Path(os.environ.get("ASTUNER_GPU_TD", "/tmp/tdc"))
STEPS = 2


def run_stage(stage: str, out: Path, **env: str) -> subprocess.CompletedProcess:
    if not (Path("/tmp/site/trinity").is_dir() and Path("/tmp/site/vllm").is_dir()):
        pytest.skip("the GPU stack is not installed in /tmp/site (benchmarks/trinity_gpu.sh install)")
    if not (TD / "sft" / "model").is_dir():
        pytest.skip(f"no SFT checkpoint under {TD} (set ASTUNER_GPU_TD)")
    full = {**os.environ, "OUT": str(out), "TD": str(TD), "STEPS": str(STEPS), **env}
    return subprocess.run(["bash", "benchmarks/trinity_gpu.sh", stage], cwd=REPO, env=full,
                          capture_output=True, text=True, timeout=590)


def leftovers(out: Path, stage: str) -> list[str]:
    return (out / stage / "leftover_ps.txt").read_text().splitlines()


@pytest.mark.timeout(600)
def test_trinity_colocated_trains_the_asked_steps(tmp_path):
    done = run_stage("trinity", tmp_path, DEADLINE="560", STALL="180")
    log = (tmp_path / "trinity" / "trinity.log").read_text(errors="replace")
    assert done.returncode == 0, done.stdout[-3000:]
    # The trainer takes a fixed number of samples per step and a rollout may give several, so it can
    # take more steps than the explorer (22 for 20 on 2026-12-06); never fewer.
    finished = re.search(r"Trinity finished \((?:both|colocate)\) at trainer step (\d+)", log)
    assert finished and int(finished.group(1)) >= STEPS, log[-3000:]
    assert leftovers(tmp_path, "trinity") == []


@pytest.mark.timeout(600)
@pytest.mark.parametrize("stage", ["local", "vllm"])
def test_local_backbone_trains_the_asked_steps(tmp_path, stage):
    done = run_stage(stage, tmp_path, DEADLINE="400")
    name = "vllm_reload" if stage == "vllm" else "local"
    log = (tmp_path / stage / f"{name}.log").read_text(errors="replace")
    assert done.returncode == 0, done.stdout[-3000:]
    assert f"astuner: trained {STEPS} steps" in log, log[-3000:]
    assert leftovers(tmp_path, stage) == []
