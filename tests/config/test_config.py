"""The config loader: seed and upstream YAML load, bad YAML fails on one line naming the key path."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
import yaml

from astuner.config import Config, ConfigError, config_to_dict, load_config, prepare_experiment
from astuner.config import compat
from astuner.config.base import iter_schema
from astuner.config.defaults import DEFAULT_YAML, dump_defaults
from astuner.config.docgen import render
from astuner.config.loader import experiment_name
from astuner.config.unsupported import rejected_leaves
from tests.conftest import REPO

SEED_YAML = """\
astune:
  task_reader:
    type: huggingface_dat_repo
  rollout:
    agentscope_workflow: tutorial.math_agent->ExampleMathLearn
  task_judge:
    judge_protocol: astune.task_judge.math_answer_as_judge->MathAnswerAndLlmAsJudge
  model:
    path: /mnt/x
"""

BOILERPLATE = """\
hydra:
  searchpath:
    - file://astuner/default_config
    - file://astuner/default_config/verl
    - file://astuner/default_config/trinity
defaults:
  - verl_default
  - trinity_default
  - astune_default
  - _self_
"""


def write(tmp_path: Path, text: str, name: str = "math.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def config_error(path: Path, overrides: tuple[str, ...] = ()) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path, overrides)
    text = str(info.value)
    assert "\n" not in text
    assert text.startswith(str(path) + ": ")
    return text


def test_seed_yaml_loads_with_astune_root(tmp_path):
    cfg = load_config(write(tmp_path, SEED_YAML))
    assert cfg.astuner.task_reader.type == "huggingface_dat_repo"
    assert cfg.astuner.rollout.agentscope_workflow == "tutorial.math_agent->ExampleMathLearn"
    assert cfg.astuner.task_judge.judge_protocol == "astune.task_judge.math_answer_as_judge->MathAnswerAndLlmAsJudge"
    assert cfg.astuner.model.path == "/mnt/x"
    assert cfg.astuner.rollout.num_repeat == 4
    assert cfg.trinity == {}


def test_upstream_math_yaml_with_boilerplate_and_trinity_block(tmp_path):
    text = """\
astuner:
  project_name: example_math_agent
  task_reader: {type: huggingface_dat_repo, huggingface_dat_repo: {dataset_path: /data/gsm8k/main, training_split: train, validation_split: test}}
  task_judge: {judge_protocol: astuner.task_judge.math_answer_as_judge->MathAnswerAsJudge}
  model: {path: /models/Qwen2___5-7B-Instruct}
  rollout: {agentscope_workflow: "tutorial.example_math_agent.math_agent->ExampleMathLearn", temperature: 1.0,
            max_env_worker: 64, num_repeat: 6, agent_madness_reward: 0.0, tensor_model_parallel_size: 1,
            max_num_seqs: 40, multi_turn: {max_sample_per_task: 2}, compute_madness_checklist: [nonsense, wrong_toolcall],
            max_response_length_in_one_turn: 1024, max_model_len: 10000, n_vllm_engine: 2}
  data: {train_batch_size: 100, max_prompt_length: 3000, max_response_length: 7000}
  debug: {debug_max_parallel: 1, debug_first_n_tasks: 1}
  trainer_common: {save_freq: 100, test_freq: 100, total_epochs: 100, logger: swanlab, optim: {lr: 1e-6}}
trinity: {synchronizer: {sync_offset: 1, sync_method: nccl}, algorithm: {optimizer: {lr: 2e-6}}}
"""
    cfg = load_config(write(tmp_path, text + BOILERPLATE))
    assert cfg.astuner.rollout.num_repeat == 6
    assert cfg.astuner.rollout.multi_turn.max_sample_per_task == 2
    assert cfg.astuner.rollout.compute_madness_checklist == ["nonsense", "wrong_toolcall"]
    assert cfg.astuner.trainer_common.optim.lr == pytest.approx(1e-6)
    assert cfg.astuner.task_reader.huggingface_dat_repo.dataset_path == "/data/gsm8k/main"
    assert cfg.trinity == {
        "synchronizer": {"sync_offset": 1, "sync_method": "nccl"},
        "algorithm": {"optimizer": {"lr": 2e-6}},
    }


def test_old_key_names_are_accepted_and_normalised(tmp_path):
    text = """\
astune:
  rollout:
    agentscope_learn_protocol: tutorial.math_agent->ExampleMathLearn
  task_reader:
    type: dataset_file
    dataset_file:
      training: {file_path: train.jsonl}
      validation: {file_path: val.jsonl}
  trainer_common:
    logger: [console, swanlab]
"""
    cfg = load_config(write(tmp_path, text))
    assert cfg.astuner.rollout.agentscope_workflow == "tutorial.math_agent->ExampleMathLearn"
    assert cfg.astuner.task_reader.type == "jsonl_dataset_file"
    assert cfg.astuner.task_reader.jsonl_dataset_file.training.file_path == "train.jsonl"
    assert cfg.astuner.task_reader.jsonl_dataset_file.validation.file_path == "val.jsonl"
    assert cfg.astuner.trainer_common.logger == "swanlab"
    dumped = config_to_dict(cfg)["astuner"]
    assert "agentscope_learn_protocol" not in dumped["rollout"]
    assert "dataset_file" not in dumped["task_reader"]


def test_astuner_defaults_differ_from_upstream_where_chosen():
    a = Config().astuner
    assert a.task_reader.type == "huggingface_dat_repo"
    assert a.task_reader.huggingface_dat_repo.model_dump() == {
        "dataset_path": "openai/gsm8k",
        "dataset_name": None,
        "training_split": "train",
        "validation_split": "test",
    }
    assert a.task_judge.judge_protocol == "astuner.task_judge.math_answer_as_judge->MathAnswerAsJudge"
    assert a.rollout.agentscope_workflow == "tutorial.example_math_agent.math_agent->ExampleMathLearn"
    assert a.trainer_common.logger == "none"
    assert a.rollout.engine.type == "transformers"
    assert a.rollout.engine.openai.base_url == "http://127.0.0.1:8000/v1"
    assert a.python_tool.isolation == "auto"
    assert a.debug.debug_split == "validation"
    assert (a.seed, a.task_reader.shuffle, a.rollout.max_rollout_retries) == (42, True, 0)


def test_empty_blocks_mean_defaults(tmp_path):
    cfg = load_config(write(tmp_path, "astuner:\n  rollout:\ntrinity:\n"))
    assert cfg.astuner.rollout.num_repeat == 4
    assert cfg.trinity == {}
    assert load_config(write(tmp_path, "astuner:\n")).astuner.backbone == "debug"


def test_overrides_win_over_file_and_backbone_wins(tmp_path):
    path = write(tmp_path, SEED_YAML + "  backbone: trinity\ntrinity: {buffer: {batch_size: 4}}\n")
    cfg = load_config(
        path,
        [
            "astune.rollout.num_repeat=8",
            "astuner.model.path=/other",
            "rollout.compute_madness_checklist=[nonsense, non_ascii]",
            "trinity.buffer.batch_size=16",
            "trinity.monitor.monitor_type=tensorboard",
            "astuner.rollout.agentscope_learn_protocol=my.mod->W",
            "astuner.trainer_common.optim.lr=3e-6",
        ],
        backbone="local",
    )
    assert cfg.astuner.rollout.num_repeat == 8
    assert cfg.astuner.model.path == "/other"
    assert cfg.astuner.rollout.compute_madness_checklist == ["nonsense", "non_ascii"]
    assert cfg.trinity == {"buffer": {"batch_size": 16}, "monitor": {"monitor_type": "tensorboard"}}
    assert cfg.astuner.rollout.agentscope_workflow == "my.mod->W"
    assert cfg.astuner.trainer_common.optim.lr == pytest.approx(3e-6)
    assert cfg.astuner.backbone == "local"


def test_unknown_key_suggests_closest(tmp_path):
    text = config_error(write(tmp_path, "astuner:\n  rollout:\n    num_repet: 6\n"))
    assert text == f"{tmp_path / 'math.yaml'}: astuner.rollout.num_repet: unknown key (did you mean 'num_repeat'?)"


def test_unknown_key_in_seed_file_names_the_astune_root(tmp_path):
    text = config_error(write(tmp_path, "astune:\n  task_judge:\n    judge_protocl: a->B\n"))
    assert text.endswith("astune.task_judge.judge_protocl: unknown key (did you mean 'judge_protocol'?)")


def test_wrong_type_names_key_and_value(tmp_path):
    text = config_error(write(tmp_path, "astuner:\n  rollout:\n    num_repeat: six\n"))
    assert text.endswith("astuner.rollout.num_repeat: expected an integer, got 'six'")


def test_bad_literal_lists_choices(tmp_path):
    text = config_error(write(tmp_path, "astuner:\n  rollout:\n    engine:\n      type: sglang\n"))
    assert "astuner.rollout.engine.type: expected one of 'transformers', 'vllm', 'openai' or 'scripted', got 'sglang'" in text


def test_bad_list_item_names_index(tmp_path):
    text = config_error(write(tmp_path, "astuner:\n  rollout:\n    compute_madness_checklist: [nonsense, typo]\n"))
    assert "astuner.rollout.compute_madness_checklist[1]: expected one of" in text


def test_block_given_a_scalar(tmp_path):
    text = config_error(write(tmp_path, "astuner:\n  rollout: 5\n"))
    assert text.endswith("astuner.rollout: expected a mapping, got 5")


def test_missing_root(tmp_path):
    text = config_error(write(tmp_path, "trinity: {}\n"))
    assert "missing the 'astuner:' root key" in text


def test_both_roots(tmp_path):
    text = config_error(write(tmp_path, "astune: {}\nastuner: {}\n"))
    assert "both 'astuner:' and its old name 'astune:'" in text


def test_yaml_syntax_error_names_line(tmp_path):
    text = config_error(write(tmp_path, "astuner:\n  rollout:\n    num_repeat: 4\n   bad: [\n"))
    assert "line 4" in text and "invalid YAML" in text


def test_duplicate_yaml_key_is_an_error(tmp_path):
    text = config_error(write(tmp_path, "astuner:\n  rollout: {num_repeat: 2}\n  rollout: {temperature: 1.0}\n"))
    assert "line 3" in text and "duplicate key 'rollout'" in text


def test_non_mapping_file(tmp_path):
    assert "expected a mapping with an 'astuner:' root key, got a list" in config_error(write(tmp_path, "- a\n- b\n"))
    assert "the file is empty" in config_error(write(tmp_path, "", "empty.yaml"))


def test_missing_file(tmp_path):
    assert config_error(tmp_path / "nope.yaml").endswith("nope.yaml: file not found")


def test_max_model_len_invariant(tmp_path):
    yaml_text = "astuner:\n  data: {max_prompt_length: 3000, max_response_length: 7000}\n  rollout: {max_model_len: 9000}\n"
    text = config_error(write(tmp_path, yaml_text))
    assert text.endswith(
        "astuner.rollout.max_model_len: must be >= data.max_prompt_length + data.max_response_length"
        " = 3000 + 7000 = 10000, got 9000"
    )


def test_unknown_top_level_key(tmp_path):
    text = config_error(write(tmp_path, "astuner: {}\ntrinty: {}\n"))
    assert ": trinty: unknown key (did you mean 'trinity'?) at the top level" in text


def test_bad_override_paths(tmp_path):
    path = write(tmp_path, SEED_YAML)
    assert "foo.bar: unknown key" in config_error(path, ("foo.bar=1",))
    assert "expected key.path=value" in config_error(path, ("astuner.rollout.num_repeat",))
    text = config_error(path, ("astuner.rollout.num_repet=3",))
    assert text.endswith(
        "astune.rollout.num_repet: unknown key (did you mean 'num_repeat'?) (from override 'astuner.rollout.num_repet=3')"
    )
    assert "astuner.model.path: is '/mnt/x', not a mapping" in config_error(path, ("astuner.model.path.x=1",))
    assert "cannot replace a whole root block" in config_error(path, ("trinity=1",))


def test_conflicting_old_and_new_names(tmp_path):
    both = "astuner:\n  rollout: {agentscope_learn_protocol: a->B, agentscope_workflow: c->D}\n"
    text = config_error(write(tmp_path, both))
    assert "astuner.rollout.agentscope_workflow: both 'agentscope_workflow' and its old name" in text


def test_gamma_other_than_one_is_refused(tmp_path):
    text = config_error(write(tmp_path, "astuner:\n  rollout: {gamma: 0.9}\n"))
    assert text.endswith(": astuner.rollout.gamma is not supported by this version of astuner")


def test_bound_violation(tmp_path):
    text = config_error(write(tmp_path, "astuner:\n  rollout: {num_repeat: 0}\n"))
    assert text.endswith("astuner.rollout.num_repeat: must be >= 1, got 0")


def test_experiment_naming():
    cfg = Config()
    when = datetime(2025, 12, 23, 9, 5)
    assert experiment_name(cfg, "configs/math_agent.yaml", when) == "math_agent_20251223_0905"
    cfg.astuner.experiment_name = "grpo|qwen"
    assert experiment_name(cfg, "configs/math_agent.yaml", when) == "grpo-qwen"
    cfg.astuner.experiment_name = ""
    assert experiment_name(cfg, "a.yml", when) == "a_20251223_0905"


def test_prepare_experiment_backup_round_trips(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    conf = write(tmp_path, SEED_YAML + "trinity: {synchronizer: {sync_offset: 1}}\n", "math_agent.yaml")
    cfg = load_config(conf, ["astuner.rollout.num_repeat=6"], backbone="debug")
    exp = prepare_experiment(cfg, conf, "saved_experiments")
    assert exp.is_absolute() and exp.is_dir()
    assert exp.parent == tmp_path / "saved_experiments"
    assert exp.name.startswith("math_agent_")
    assert cfg.astuner.experiment_name == exp.name
    assert cfg.astuner.experiment_dir == str(exp)
    backup = exp / "yaml_backup.yaml"
    raw = yaml.safe_load(backup.read_text())
    assert list(raw) == ["astuner", "trinity"]
    again = load_config(backup)
    assert again == cfg
    assert config_to_dict(again) == config_to_dict(cfg)
    assert prepare_experiment(again, backup, tmp_path / "saved_experiments") == exp


def test_every_field_has_a_doc():
    for entry in iter_schema(Config()):
        assert entry.doc and "\n" not in entry.doc, entry.path


def test_unsupported_upstream_keys_are_documented_as_such():
    committed = (REPO / "docs" / "config.md").read_text(encoding="utf-8")
    section = committed.split("## Not supported by this version", 1)[1]
    for path in (
        "astuner.rollout.name",
        "astuner.rollout.step_skip_action",
        "astuner.context_tracker.max_env_len",
        "astuner.execute_test",
        "astuner.task_judge.rubrics_auto_grader.model_name",
    ):
        assert f"| `{path}` |" in section, path
    for path in rejected_leaves():
        assert f"`astuner.{path}`" in section, path
    compat_section = committed.split("## Compatibility spellings", 1)[1].split("## Not supported", 1)[0]
    for key in compat.CHECKED_ONLY:
        assert f"`astuner.{key}`" in compat_section, key


def test_packaged_default_yaml_equals_schema_defaults():
    text = DEFAULT_YAML.read_text(encoding="utf-8")
    assert text == dump_defaults(), "regenerate: python -m astuner.config.defaults > astuner/config/default.yaml"
    assert yaml.safe_load(text) == config_to_dict(Config())


def test_default_yaml_loads_as_a_config():
    assert load_config(DEFAULT_YAML) == Config()


def test_docs_config_md_is_up_to_date():
    committed = (REPO / "docs" / "config.md").read_text(encoding="utf-8")
    assert committed == render(), "regenerate: python -m astuner.config.docgen > docs/config.md"
    for entry in iter_schema(Config()):
        if not entry.is_block:
            assert f"`{entry.path.rsplit('.', 1)[-1]}`" in committed


def test_literal_types_render_in_docs():
    assert '"transformers" \\| "vllm" \\| "openai" \\| "scripted"' in render()
