"""The local backbone with ``rollout.engine.type=vllm``: rollouts through the stand-in ``vllm``, and
the updated weights given to the server after every policy update, reloaded in place (the default
``weight_sync: reload``) or by a restart (``weight_sync: restart``).

The policy is the tiny model on CPU; the stand-in server replies with scripted token ids (it has no
model), so what is checked is the plumbing: which weights each server was started on, that each
step's rollouts went to the server started after the previous update, that the saved weights are
a loadable directory and are cleaned up, and that no server survives the run.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import pytest

from astuner.cli import main
from tests.conftest import REPO
from tests.engine.test_vllm_debug import cache, scripted  # noqa: F401 - fixtures
from tests.engine.test_vllm_server import fake_vllm  # noqa: F401 - fixture

pytestmark = pytest.mark.integration

JUDGE = '''
from astuner.task_judge.base_judge import BaseJudge


class LengthJudge(BaseJudge):
    def judge(self, judge_input):
        n = len(str(judge_input.get("final_answer", "")))
        return float(n % 2), bool(n % 2)
'''


def write_config(tmp_path: Path, *, lora_rank: int = 0, weight_sync: str = "reload") -> Path:
    (tmp_path / "length_judge.py").write_text(JUDGE)
    tasks = REPO / "tutorial/example_math_agent/data/offline_tasks.jsonl"
    conf = tmp_path / "local_vllm.yaml"
    conf.write_text(f"""\
astuner:
  experiment_name: local_vllm
  task_reader:
    type: dataset_file
    dataset_file:
      training: {{file_path: {tasks}}}
      validation: {{file_path: {tasks}}}
  rollout:
    num_repeat: 2
    compute_madness_checklist: []
    max_response_length_in_one_turn: 256
    max_model_len: 4096
    engine: {{type: vllm, vllm: {{port: {20000 + (os.getpid() + 7) % 20000}, gpu_memory_utilization: 0.4, weight_sync: {weight_sync}}}}}
  data: {{train_batch_size: 2, max_prompt_length: 2000, max_response_length: 2000}}
  task_judge: {{judge_protocol: {tmp_path}/length_judge.py->LengthJudge}}
  model: {{path: "astuner://tiny"}}
  trainer_common: {{save_freq: 2, test_freq: 2, total_epochs: 10, optim: {{lr: 1.0e-3}}}}
  local: {{max_steps: 2, val_max_tasks: 2, lora_rank: {lora_rank}}}
""")
    return conf


def test_local_backbone_restarts_vllm_on_each_update(fake_vllm, scripted, tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    conf = write_config(tmp_path, weight_sync="restart")
    assert main(["--conf", str(conf), "--backbone=local", "--exp-dir", str(tmp_path / "exp")]) == 0
    run = tmp_path / "exp" / "local_vllm"
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2] and "val/reward_mean" in rows[1]
    states = fake_vllm.states()
    states.sort(key=lambda s: (run / "vllm_server.log").read_text().index(f"[{s['pid']}]"))
    tiny = str(Path(os.environ["ASTUNER_CACHE"]) / "tiny-qwen2")
    weights = run / "vllm_weights"
    assert [s["argv"][1] for s in states] == [tiny, str(weights / "step_000001"), str(weights / "step_000002")]
    for state in states:
        argv = state["argv"]
        assert argv[argv.index("--served-model-name") + 1] == tiny
        assert argv[argv.index("--gpu-memory-utilization") + 1] == "0.4"
    requests = (fake_vllm.state_dir / "requests.log").read_text().splitlines()
    per_server = Counter(json.loads(line)["pid"] for line in requests)
    step_rollouts, validation = 2 * 2 * 2, 2 * 2
    assert [per_server[s["pid"]] for s in states] == [step_rollouts, step_rollouts, validation]
    assert all("--enable-sleep-mode" not in s["argv"] for s in states)
    assert not (fake_vllm.state_dir / "dev.log").exists()
    assert all(r["weight_sync_s"] > 0 for r in rows)
    assert not weights.exists()
    assert (run / "checkpoints" / "step_2" / "model" / "config.json").exists()
    assert fake_vllm.survivors() == [] and fake_vllm.records() == []


def test_local_backbone_reloads_vllm_weights_in_place(fake_vllm, scripted, tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    conf = write_config(tmp_path)
    assert main(["--conf", str(conf), "--backbone=local", "--exp-dir", str(tmp_path / "exp")]) == 0
    run = tmp_path / "exp" / "local_vllm"
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2] and all(r["weight_sync_s"] > 0 for r in rows)
    (server,) = fake_vllm.states()
    assert "--enable-sleep-mode" in server["argv"]
    weights = run / "vllm_weights"
    calls = [json.loads(line) for line in (fake_vllm.state_dir / "dev.log").read_text().splitlines()]
    assert {c["pid"] for c in calls} == {server["pid"]}
    per_update = lambda step: [  # noqa: E731 - the four calls of one update, in order
        ("/sleep", "level=1", None), ("/wake_up", "", None),
        ("/collective_rpc", "", str(weights / f"step_{step:06d}")), ("/reset_prefix_cache", "", None),
    ]
    seen = [(c["route"], c["query"], (c["body"].get("kwargs") or {}).get("weights_path")) for c in calls]
    assert seen == per_update(1) + per_update(2)
    requests = (fake_vllm.state_dir / "requests.log").read_text().splitlines()
    assert len(requests) == 2 * (2 * 2 * 2) + 2 * 2 and {json.loads(r)["pid"] for r in requests} == {server["pid"]}
    assert not weights.exists()
    assert fake_vllm.survivors() == [] and fake_vllm.records() == []


def test_local_backbone_refuses_vllm_with_lora(fake_vllm, cache, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(REPO)
    monkeypatch.setenv("ASTUNER_CACHE", str(cache))
    conf = write_config(tmp_path, lora_rank=8)
    assert main(["--conf", str(conf), "--backbone=local", "--exp-dir", str(tmp_path / "exp")]) == 2
    err = capsys.readouterr().err
    assert "'vllm' with local.lora_rank > 0 is not supported" in err
    assert fake_vllm.states() == []
