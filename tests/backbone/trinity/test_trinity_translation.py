"""astuner config → Trinity config translation (plain data; these tests need no trinity-rft)."""

from __future__ import annotations

import pytest

from astuner.backbone.trinity.config import TranslationError, deep_merge, trainer_gpus, translate
from astuner.config import load_config, prepare_experiment

pytestmark = pytest.mark.integration

BASE = """\
astuner:
  experiment_name: tr
  model: {{path: /models/qwen}}
  data: {{train_batch_size: 32}}
  rollout: {{num_repeat: 4, n_vllm_engine: 1, max_env_worker: 200}}
  trainer_common: {{nnodes: 1, n_gpus_per_node: 8, checkpoint_base_dir: {ckpt}}}
{trinity}
"""


def _translate(tmp_path, trinity: str = "", **kw):
    path = tmp_path / "c.yaml"
    path.write_text(BASE.format(ckpt=tmp_path / "ckpt", trinity=trinity))
    config = load_config(path, backbone="trinity")
    exp_dir = prepare_experiment(config, path, tmp_path / "exp")
    return translate(config, exp_dir, **kw)


def test_computed_keys_and_the_batch_guard(tmp_path):
    t = _translate(tmp_path)
    d = t.data
    assert d["algorithm"]["repeat_times"] == 4 and d["buffer"]["batch_size"] == 32
    # 32 * 4 * 1 = 128 samples per step; 8 GPUs - 1 engine = 7 trainer GPUs -> raised to 133
    assert trainer_gpus(d) == 7
    assert d["buffer"]["train_batch_size"] == 133
    assert [n for n in t.notes if "flash_attn" not in n] == [
        "buffer.train_batch_size raised from 128 to 133, the next multiple of the 7 trainer GPUs"]
    assert d["explorer"]["runner_per_model"] == 16  # min(ceil(200 / 4), 16) // 1 engine
    assert "max_repeat_times_per_runner" not in d["explorer"]  # a runner runs a whole group
    assert d["cluster"] == {"node_num": 1, "gpu_per_node": 8}
    assert d["checkpoint_root_dir"] == str(tmp_path / "ckpt")


def test_user_trinity_block_wins_and_computed_keys_follow_it(tmp_path):
    t = _translate(tmp_path, "trinity:\n  algorithm: {repeat_times: 7}\n  explorer: {rollout_model: {engine_num: 4}}")
    d = t.data
    assert d["algorithm"]["repeat_times"] == 7
    assert d["algorithm"]["algorithm_type"] == "multi_step_grpo"  # siblings of a user key are kept
    assert d["explorer"]["rollout_model"]["engine_num"] == 4
    assert d["explorer"]["rollout_model"]["enable_openai_api"] is True
    assert d["explorer"]["runner_per_model"] == 4  # min(ceil(200 / 7), 16) // 4 engines
    assert d["buffer"]["train_batch_size"] == 32 * 7 == 224  # and 224 % (8 - 4) == 0


def test_user_train_batch_size_is_never_changed(tmp_path):
    t = _translate(tmp_path, "trinity:\n  buffer: {train_batch_size: 140}")
    assert t.data["buffer"]["train_batch_size"] == 140
    assert [n for n in t.notes if "flash_attn" not in n] == []
    with pytest.raises(TranslationError, match="not a multiple of the 7 trainer GPUs"):
        _translate(tmp_path, "trinity:\n  buffer: {train_batch_size: 130}")


def test_validation_taskset_uses_val_kwargs_and_can_be_left_out(tmp_path):
    d = _translate(tmp_path).data
    (val,) = d["buffer"]["explorer_input"]["eval_tasksets"]
    assert val["split"] == "validation" and val["repeat_times"] == 1
    assert val["rollout_args"]["temperature"] == 0.0
    assert _translate(tmp_path, with_validation=False).data["buffer"]["explorer_input"]["eval_tasksets"] == []


def test_deep_merge_replaces_lists_and_scalars():
    base = {"a": {"b": 1, "c": [1, 2]}, "d": 1}
    assert deep_merge(base, {"a": {"c": [3]}, "d": {"x": 1}}) == {"a": {"b": 1, "c": [3]}, "d": {"x": 1}}
    assert base == {"a": {"b": 1, "c": [1, 2]}, "d": 1}


@pytest.mark.parametrize("installed", [False, True])
def test_trainer_attention_follows_whether_flash_attn_is_installed(tmp_path, monkeypatch, installed):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: (object() if installed else None) if name == "flash_attn" else real(name, *a))
    t = _translate(tmp_path)
    trainer = t.data["trainer"]
    if installed:  # Trinity's defaults (flash_attention_2, remove padding) stand
        assert "trainer_config" not in trainer and "use_remove_padding" not in trainer
        assert not any("flash_attn" in n for n in t.notes)
    else:
        assert trainer["use_remove_padding"] is False
        assert trainer["trainer_config"]["model"]["override_config"]["attn_implementation"] == "sdpa"
        assert any("flash_attn is not installed" in n for n in t.notes)


def test_user_attention_choice_wins(tmp_path):
    block = "trinity:\n  trainer: {use_remove_padding: true, trainer_config: {model: {override_config: {attn_implementation: eager}}}}"
    t = _translate(tmp_path, block)
    assert t.data["trainer"]["use_remove_padding"] is True
    assert t.data["trainer"]["trainer_config"]["model"]["override_config"]["attn_implementation"] == "eager"
    assert not any("flash_attn" in n for n in t.notes)


def test_runners_per_engine_counts_whole_groups():
    from astuner.backbone.trinity.config import MAX_RUNNERS, runners_per_engine

    assert runners_per_engine(256, 8, 1) == MAX_RUNNERS == 16  # 32 groups wanted, capped
    assert runners_per_engine(24, 8, 1) == 3  # three groups of 8 in flight
    assert runners_per_engine(25, 8, 1) == 4  # rounded up to whole groups
    assert runners_per_engine(256, 8, 4) == 4  # 16 runners over 4 engines
    assert runners_per_engine(8, 8, 4) == 1  # never fewer than one per engine
