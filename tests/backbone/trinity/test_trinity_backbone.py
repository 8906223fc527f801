"""The trinity backbone against the real trinity-rft 0.6.0 on CPU.

Real: Trinity's ``load_config``/``check_and_update``, its ``WorkflowRunner`` (the Ray actor class,
instantiated directly), its task formatter, ``Experience`` serialization and its advantage
functions. Stubbed (see ``tests/backbone/trinity/fixtures.py``): the vLLM modules Trinity imports at
module import, and the vLLM-backed rollout model — ``Allocator.get_model`` returns a dummy
wrapper whose ``/v1/completions`` server answers from astuner's scripted engine. Skipped, saying
so, when trinity-rft is not installed.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import yaml

from astuner.backbone.trinity.config import TRAINER_TOKENS_PER_GPU
from tests.backbone.trinity.fixtures import (
    SKIP_REASON,
    TRINITY_MISSING,
    checked_trinity_config,
    fake_logprob,
    require_trinity,
    run_tasks,
    stub_vllm,
    write_offline_yaml,
)

pytestmark = pytest.mark.integration

SEED_WITH_TRINITY = """\
astune:
  task_reader:
    type: huggingface_dat_repo
  rollout:
    agentscope_workflow: tutorial.math_agent->ExampleMathLearn
    num_repeat: 4
  task_judge:
    judge_protocol: astune.task_judge.math_answer_as_judge->MathAnswerAndLlmAsJudge
  model:
    path: /mnt/x
  trainer_common:
    checkpoint_base_dir: {ckpt}
trinity:
  synchronizer: {{sync_offset: 1, sync_method: nccl}}
  algorithm: {{repeat_times: 6}}
"""


def test_seed_yaml_converts_to_a_config_trinity_accepts(tmp_path, monkeypatch):
    monkeypatch.setattr("astuner.backbone.trinity.layout.visible_gpus", lambda: 8)  # n_gpus_per_node: auto, 8 GPUs
    require_trinity()
    from astuner.backbone.trinity.config import CONFIG_ENV, PLUGIN_DIR, check_with_trinity, translate, write_trinity_config
    from astuner.config import load_config, prepare_experiment

    conf = tmp_path / "seed.yaml"
    conf.write_text(SEED_WITH_TRINITY.format(ckpt=tmp_path / "ckpt"))
    config = load_config(conf, backbone="trinity")
    exp_dir = prepare_experiment(config, conf, tmp_path / "exp")
    translation = translate(config, exp_dir)
    path = write_trinity_config(translation.data, exp_dir)
    assert path == exp_dir / "trinity_config.yaml"
    saved = yaml.safe_load(path.read_text())
    assert saved["algorithm"]["repeat_times"] == 6  # the user's trinity: block wins over rollout.num_repeat
    assert saved["synchronizer"]["sync_offset"] == 1

    checked = check_with_trinity(path)
    a = config.astuner
    assert checked.mode == "both"
    assert checked.algorithm.algorithm_type == "multi_step_grpo" and checked.algorithm.advantage_fn == "step_wise_grpo"
    assert checked.model.model_path == "/mnt/x"
    assert checked.model.max_model_len == a.rollout.max_model_len
    assert checked.model.max_response_tokens == a.data.max_response_length
    assert checked.cluster.node_num == 1 and checked.cluster.gpu_per_node == 8
    assert checked.buffer.batch_size == a.data.train_batch_size == 32
    # computed from the final values: 32 tasks * repeat_times 6 (the trinity: block's) * 1 expected step,
    # already a multiple of the 8 - 4 = 4 trainer GPUs (n_vllm_engine unset: half the 8 GPUs run engines)
    assert checked.buffer.train_batch_size == 192
    assert not any("train_batch_size" in n for n in translation.notes)
    # without flash_attn (not installed here) Trinity's checked config trains with sdpa, unpadded batches off
    assert checked.trainer.use_remove_padding is False
    assert checked.trainer.trainer_config["model"]["override_config"]["attn_implementation"] == "sdpa"
    from trinity.trainer.verl.config import build_verl_config

    verl = build_verl_config(checked)  # what verl's workers receive
    assert verl.model.override_config.attn_implementation == "sdpa" and verl.model.use_remove_padding is False
    assert checked.explorer.runner_per_model == 16 // 4  # 16 runners (the cap) over the 4 engines
    assert checked.explorer.max_repeat_times_per_runner is None  # each runner runs a whole group
    assert checked.explorer.rollout_model.engine_num == 4 and checked.cluster.trainer_gpu_num == 4
    assert checked.explorer.rollout_model.enable_openai_api is True
    assert checked.explorer.eval_interval == a.trainer_common.test_freq
    assert checked.trainer.save_interval == a.trainer_common.save_freq
    assert checked.trainer.max_token_len_per_gpu == max(a.rollout.max_model_len, TRAINER_TOKENS_PER_GPU)
    assert checked.algorithm.optimizer.lr == a.trainer_common.optim.lr
    assert checked.algorithm.kl_loss_fn == a.trainer_common.kl_loss_type
    assert checked.project == a.project_name and checked.name == a.experiment_name
    assert checked.monitor.monitor_type == "tensorboard"  # logger 'none' = local files
    assert checked.explorer.env_vars[CONFIG_ENV] == str(exp_dir / "yaml_backup.yaml")
    assert checked.explorer.env_vars["TRINITY_PLUGIN_DIRS"] == str(PLUGIN_DIR)
    (train,) = checked.buffer.explorer_input.tasksets
    assert (train.storage_type, train.split, train.default_workflow_type) == ("astuner", "train", "astuner_workflow")
    assert train.repeat_times == 6 and train.rollout_args.temperature == a.rollout.temperature
    (val,) = checked.buffer.explorer_input.eval_tasksets
    assert (val.storage_type, val.split, val.is_eval) == ("astuner", "validation", True)
    assert val.rollout_args.temperature == a.rollout.val_kwargs.temperature
    assert val.repeat_times == a.rollout.val_kwargs.num_repeat
    assert Path(checked.checkpoint_job_dir).is_dir()  # check_and_update creates it
    assert str(tmp_path / "ckpt") in checked.checkpoint_job_dir


def test_trinity_rejects_a_bad_user_block_with_one_line(tmp_path):
    require_trinity()
    from astuner.backbone.trinity.config import TranslationError, check_with_trinity, translate, write_trinity_config
    from astuner.config import load_config, prepare_experiment

    conf = write_offline_yaml(tmp_path, trinity="  explorer: {no_such_key: 1}")
    config = load_config(conf, backbone="trinity")
    exp_dir = prepare_experiment(config, conf, tmp_path / "exp")
    path = write_trinity_config(translate(config, exp_dir).data, exp_dir)
    with pytest.raises(TranslationError) as info:
        check_with_trinity(path)
    assert "no_such_key" in str(info.value) and "\n" not in str(info.value)


def test_reader_serves_astuner_tasks_in_batches(tmp_path):
    require_trinity()
    from trinity.buffer import get_buffer_reader

    from astuner.backbone.trinity.plugin import register

    register()
    _, _, cfg = checked_trinity_config(write_offline_yaml(tmp_path), tmp_path)
    train = get_buffer_reader(cfg.buffer.explorer_input.tasksets[0])
    assert len(train) == 8
    batch = asyncio.run(train.read())
    assert len(batch) == 2
    raw = batch[0].raw_task
    assert set(raw) >= {"task_id", "main_query", "init_messages", "env_type", "metadata"}
    assert batch[0].workflow.__name__ == "AstunerWorkflow" and batch[0].repeat_times == 3
    assert train.state_dict() == {"current_index": 2}
    val = get_buffer_reader(cfg.buffer.explorer_input.eval_tasksets[0])
    seen = []
    while True:
        try:
            seen.extend(asyncio.run(val.read()))
        except StopAsyncIteration:
            break
    assert len(seen) == 8 and all(t.is_eval for t in seen)


def test_workflow_runs_through_trinitys_workflow_runner(tmp_path):
    require_trinity()
    exps, server, _ = run_tasks(tmp_path)
    assert len(exps) == 2 * 3  # one sample per ReAct rollout
    assert {(e.eid.task, e.eid.run) for e in exps} == {(t, r) for t in (0, 1) for r in range(3)}
    assert {e.reward for e in exps} == {0.0, 1.0}
    for e in exps:
        resp = len(e.tokens) - e.prompt_length
        assert e.prompt_length > 0 and resp > 0
        assert len(e.logprobs) == len(e.action_mask) == resp
        mask = e.action_mask.bool()
        assert (e.logprobs[~mask] == 0).all(), "logprobs must be 0 where the loss mask is 0"
        assert (e.logprobs[mask] != 0).all()
        assert e.eid.step == 0 and e.metrics["success"] == e.reward
        assert e.info["model_version"] == 0  # stamped by Trinity's runner
    # token-exact: every prompt vLLM saw is a prefix of a trained sequence, and each generated
    # token sits under mask 1 with the logprob the server returned for it
    for request in server.requests:
        prompt = request["prompt"]
        assert any(e.tokens[: len(prompt)].tolist() == prompt for e in exps)
    for e in exps:
        mask = e.action_mask.bool().tolist()
        first = mask.index(True)
        run = 0
        while first + run < len(mask) and mask[first + run]:
            run += 1
        assert e.logprobs[first: first + run].tolist() == pytest.approx([fake_logprob(i) for i in range(run)])
    # the model tuner sampled with the train taskset's rollout_args
    assert {r["temperature"] for r in server.requests} == {0.9}


def test_experiences_match_astuner_samples(tmp_path):
    require_trinity()
    from astuner.backbone.trinity.workflow import experiences_from_rollout
    from astuner.rollout import RolloutResult
    from astuner.schema import Sample

    tokens = [1, 2, 3, 4, 5, 6, 7, 8]
    mask = [0, 0, 0, 1, 1, 0, 1, 1]
    logprobs = [0, 0, 0, -0.5, -0.25, 0, -1.0, -2.0]
    sample = Sample(tokens, mask, [float(x) for x in logprobs], reward=0.5, group_id="t", rollout_id="Tt#R2",
                    prompt_length=3, truncated=True)
    result = RolloutResult(task_id="t", repeat_index=2, rollout_id="Tt#R2", reward=0.5, samples=[sample, sample])
    exps = experiences_from_rollout(result, run=2)
    assert [(e.eid.run, e.eid.step) for e in exps] == [(2, 0), (2, 1)]
    e = exps[0]
    assert e.tokens.tolist() == tokens and e.prompt_length == 3
    assert e.action_mask.tolist() == [bool(m) for m in mask[3:]]
    assert e.logprobs.tolist() == logprobs[3:]
    assert e.reward == 0.5 and e.truncate_status == "response_truncated"
    assert exps[0].metrics == {} and exps[1].metrics["reward"] == 0.5  # metrics once per rollout


def test_vllm_stub_is_only_installed_without_vllm():
    if TRINITY_MISSING:
        pytest.skip(SKIP_REASON)
    stub_vllm()
    from trinity.explorer.workflow_runner import WorkflowRunner  # imports vLLM modules at import

    assert WorkflowRunner.__name__ == "WorkflowRunner"
