"""The local backbone end to end on CPU: the tiny model trains, checkpoints, and resumes after SIGKILL.

Real parts throughout: the tutorial's ReAct workflow, the Python tool, the transformers engine on
the tiny random model, the trainer. The judge rewards the parity of the final answer's length, so
a random policy has reward variance and GRPO has a gradient to follow.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from astuner.cli import main
from tests.conftest import REPO

pytestmark = pytest.mark.integration

JUDGE = '''
from astuner.task_judge.base_judge import BaseJudge


class ParityJudge(BaseJudge):
    def judge(self, judge_input):
        n = len(str(judge_input.get("final_answer", "")))
        return float(n % 2), bool(n % 2)
'''

STEP_KEYS = {
    "reward_mean", "reward_std", "success_rate", "failed_rollouts", "tool_calls_per_rollout", "llm_calls_per_rollout",
    "response_length_mean", "samples", "timeline_breaks", "bad_case/malformed_tool_call", "bad_case/empty_tool_stdout",
    "bad_case/answer_before_tool_response", "pg_loss", "pg_clipfrac", "ppo_kl", "grad_norm", "step_time_s",
    "rollout_time_s", "train_time_s", "rollout_tokens_per_s", "train_tokens_per_s", "lr",
}


def write_config(tmp_path: Path, *, max_steps: int, save_freq: int, name: str = "local_test", extra: str = "") -> Path:
    (tmp_path / "parity_judge.py").write_text(JUDGE)
    conf = tmp_path / "local.yaml"
    conf.write_text(f"""\
astuner:
  experiment_name: {name}
  task_reader:
    type: dataset_file
    dataset_file:
      training: {{file_path: {REPO}/tutorial/example_math_agent/data/offline_tasks.jsonl}}
      validation: {{file_path: {REPO}/tutorial/example_math_agent/data/offline_tasks.jsonl}}
  rollout:
    num_repeat: 4
    compute_madness_checklist: []
    max_response_length_in_one_turn: 16
    max_model_len: 4096
  data: {{train_batch_size: 2, max_prompt_length: 2000, max_response_length: 2000}}
  task_judge: {{judge_protocol: {tmp_path}/parity_judge.py->ParityJudge}}
  model: {{path: "astuner://tiny"}}
  trainer_common: {{save_freq: {save_freq}, test_freq: 2, total_epochs: 10, optim: {{lr: 1.0e-3}}}}
  local: {{max_steps: {max_steps}, val_max_tasks: 2{extra}}}
""")
    return conf


def metrics_rows(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _cli_run(tmp_path: Path, *, max_steps: int, save_freq: int) -> tuple[list[str], dict, Path]:
    """The local run as a child process: (argv, environment, run folder)."""
    conf = write_config(tmp_path, max_steps=max_steps, save_freq=save_freq)
    exp = tmp_path / "exp"
    env = {**os.environ, "ASTUNER_CACHE": str(tmp_path / "cache"), "CI": "1"}
    cmd = [sys.executable, "-m", "astuner.cli", "--conf", str(conf), "--backbone=local", "--exp-dir", str(exp)]
    return cmd, env, exp / "local_test"


def _running(pid: int) -> bool:
    """``pid`` exists and is not a zombie (a reaped or exiting child is not running)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def _stacks(pid: int) -> str:
    """Every thread's Python stack in ``pid`` (py-spy, which ray[default] installs), for a failure message."""
    try:
        done = subprocess.run(["py-spy", "dump", "--pid", str(pid)], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"(py-spy dump failed: {exc})"
    return (done.stdout + done.stderr)[-8000:]


def _start_and_wait_for(cmd: list[str], env: dict, ready, timeout_s: float = 300) -> subprocess.Popen:
    """Start ``cmd`` and return once ``ready()`` holds (failing if the run ends or the time runs out first)."""
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + timeout_s
    while not ready():
        assert proc.poll() is None, proc.stdout.read()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return proc


def test_local_backbone_trains_and_writes_everything(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ASTUNER_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(REPO)
    conf = write_config(tmp_path, max_steps=2, save_freq=1)
    assert main(["--conf", str(conf), "--backbone=local", "--exp-dir", str(tmp_path / "exp")]) == 0
    run = tmp_path / "exp" / "local_test"
    rows = metrics_rows(run)
    assert [r["step"] for r in rows] == [1, 2]
    for r in rows:
        assert STEP_KEYS <= set(r), STEP_KEYS - set(r)
        assert abs(r["ppo_kl"]) < 1e-3  # on-policy: the trainer's logprobs match the engine's
    assert "val/success_rate" in rows[1]
    assert (run / "training_curve.png").stat().st_size > 1000
    assert (run / "DONE").exists()
    from safetensors.torch import load_file

    tiny = tmp_path / "cache" / "tiny-qwen2" / "model.safetensors"
    before = load_file(str(tiny))
    after = load_file(str(run / "checkpoints" / "step_2" / "model" / "model.safetensors"))
    moved = [k for k in before if k in after and not torch.equal(before[k], after[k])]
    assert moved, "no weight changed after two GRPO steps"
    assert any(r["grad_norm"] > 0 for r in rows)


def test_resume_after_sigkill_continues_at_the_right_step(tmp_path):
    cmd, env, run = _cli_run(tmp_path, max_steps=6, save_freq=2)
    proc = _start_and_wait_for(cmd, env, lambda: (run / "checkpoints" / "latest").exists())
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (run / "DONE").exists(), "the run finished before it could be killed; make steps slower"
    saved = int((run / "checkpoints" / "latest").read_text().split("_")[1])
    out = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"from step {saved}" in out.stdout
    rows = metrics_rows(run)
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert (run / "DONE").read_text().strip() == "6"


def test_local_backbone_with_lora(tmp_path, monkeypatch):
    pytest.importorskip("peft")
    monkeypatch.setenv("ASTUNER_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(REPO)
    conf = write_config(tmp_path, max_steps=1, save_freq=1, extra=", lora_rank: 4")
    assert main(["--conf", str(conf), "--backbone=local", "--exp-dir", str(tmp_path / "exp")]) == 0
    model_dir = tmp_path / "exp" / "local_test" / "checkpoints" / "step_1" / "model"
    assert (model_dir / "adapter_config.json").exists()


def test_local_backbone_refuses_non_transformers_engine(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ASTUNER_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(REPO)
    conf = write_config(tmp_path, max_steps=1, save_freq=1)
    code = main(["--conf", str(conf), "--backbone=local", "--exp-dir", str(tmp_path / "exp"),
                 "astuner.rollout.engine.type=scripted"])
    assert code == 2 and "astuner.rollout.engine.type" in capsys.readouterr().err


def test_sigterm_keeps_finished_steps_and_exits_143(tmp_path):
    """``kill`` during training: exit 143 after the cleanup, the finished steps' metrics on disk,
    no DONE marker, and no sandbox left (the run's children are gone)."""
    cmd, env, run = _cli_run(tmp_path, max_steps=50, save_freq=100)
    metrics = run / "metrics.jsonl"
    proc = _start_and_wait_for(cmd, env, lambda: metrics.exists() and bool(metrics.read_text().strip()))
    children = [int(p) for p in Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()]
    proc.send_signal(signal.SIGTERM)
    try:
        out, _ = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        stacks = _stacks(proc.pid)
        proc.kill()
        proc.communicate()
        pytest.fail(f"the run did not end within 120 s of SIGTERM; its threads then:\n{stacks}")
    assert proc.returncode == 143, out
    assert "astuner: terminated (SIGTERM)" in out
    rows = metrics_rows(run)
    assert rows and rows[0]["step"] == 1 and len(rows) < 50
    assert not (run / "DONE").exists()
    deadline = time.monotonic() + 15  # a busy machine may take a moment to reap them
    while True:
        alive = [c for c in children if _running(c)]
        if not alive or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert not alive, f"children of the run still alive: {alive}"
