"""Compatibility and unsupported keys: seed configs load, upstream keys astuner lacks are refused.

``astuner.config.compat`` lists what seed-era configs may still say; ``astuner.config.unsupported``
lists upstream keys this version does not implement, accepted only at upstream's default. Any other
value is one line, ``<file>: <key> is not supported by this version of astuner``, and through the
CLI exit 2 with nothing created.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from astuner.cli import main
from astuner.config import Config, ConfigError, load_config, load_config_for_run
from astuner.config.defaults import DEFAULT_YAML
from astuner.config.unsupported import REJECTED_KEYS, leaves
from tests.conftest import REPO, shared_path

NOT_SUPPORTED = "is not supported by this version of astuner"
LEAVES = [(path, value) for key, rejected in REJECTED_KEYS.items() for path, value in leaves(key, rejected.accepted)]


def nested(path: str, value: Any) -> dict[str, Any]:
    """``{"a": {"b": value}}`` for ``"a.b"``."""
    out: Any = value
    for part in reversed(path.split(".")):
        out = {part: out}
    return out


def write(tmp_path: Path, data: Any, name: str = "conf.yaml") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data), encoding="utf-8")
    return path


def other_value(value: Any) -> Any:
    """A value of the same kind that differs from ``value``."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int | float):
        return value + 1
    if isinstance(value, list):
        return [*value, "other"]
    return f"{value}-other" if value else "other"


def error_of(path: Path, overrides: tuple[str, ...] = ()) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path, overrides)
    text = str(info.value)
    assert "\n" not in text
    return text


@pytest.mark.parametrize("key,value", LEAVES, ids=[key for key, _ in LEAVES])
def test_an_unsupported_key_set_to_another_value_is_one_line(key, value, tmp_path):
    conf = write(tmp_path, {"astuner": nested(key, other_value(value))})
    assert error_of(conf) == f"{conf}: astuner.{key} {NOT_SUPPORTED}"


def test_every_unsupported_key_at_upstreams_default_loads_as_the_defaults(tmp_path):
    data: dict[str, Any] = {}
    for key, value in LEAVES:
        *parents, leaf = key.split(".")
        node = data
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    assert load_config(write(tmp_path, {"astune": data})) == Config()


def test_an_empty_unsupported_block_loads(tmp_path):
    assert load_config(write(tmp_path, "astuner:\n  context_tracker:\n  trainer_common: {fsdp_config: {}}\n")) == Config()


def test_the_error_names_the_root_the_file_used(tmp_path):
    conf = write(tmp_path, "astune:\n  rollout: {gamma: 0.9}\n")
    assert error_of(conf) == f"{conf}: astune.rollout.gamma {NOT_SUPPORTED}"


def test_an_unknown_key_inside_an_unsupported_block_is_named(tmp_path):
    conf = write(tmp_path, "astuner:\n  task_judge:\n    rubrics_auto_grader: {grader_mode: pointwise, rubric_count: 3}\n")
    assert error_of(conf) == f"{conf}: astuner.task_judge.rubrics_auto_grader.rubric_count {NOT_SUPPORTED}"


def test_an_unsupported_reader_type_is_refused(tmp_path):
    conf = write(tmp_path, "astuner:\n  task_reader: {type: data_generation}\n")
    assert error_of(conf) == f"{conf}: astuner.task_reader.type 'data_generation' {NOT_SUPPORTED}"


def test_an_override_of_an_unsupported_key_says_so(tmp_path):
    conf = write(tmp_path, "astuner: {}\n")
    assert error_of(conf, ("context_tracker.max_env_len=1",)) == (
        f"{conf}: astuner.context_tracker.max_env_len {NOT_SUPPORTED} (from override 'context_tracker.max_env_len=1')"
    )
    assert error_of(conf, ("astune.trainer_common.algorithm.adv_estimator=gae",)).endswith(
        f"astuner.trainer_common.algorithm.adv_estimator {NOT_SUPPORTED} "
        "(from override 'astune.trainer_common.algorithm.adv_estimator=gae')"
    )
    assert load_config(conf, ("astuner.rollout.val_kwargs.do_sample=false",)) == Config()


def test_the_cli_exits_2_with_one_line_and_creates_nothing(tmp_path, monkeypatch, capsys):
    conf = write(tmp_path, "astuner:\n  model: {path: 'astuner://tiny'}\n  trainer_common: {fsdp_config: {param_offload: false}}\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ASTUNER_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("ASTUNER_RUN", raising=False)
    code = main(["--conf", str(conf), "--backbone=debug", "--exp-dir", str(tmp_path / "exp")])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err == f"astuner: error: {conf}: astuner.trainer_common.fsdp_config.param_offload {NOT_SUPPORTED}"
    assert not (tmp_path / "exp").exists()


def test_a_checked_only_key_at_another_value_gives_one_note(tmp_path):
    base = "astuner:\n  model: {path: 'astuner://tiny'}\n  task_reader: {type: random_dummy}\n"
    assert load_config_for_run(write(tmp_path, base), backbone="debug").notes == []
    conf = write(tmp_path, base + "  data: {max_prompt_length: 512}\n")
    (note,) = load_config_for_run(conf, backbone="debug").notes
    assert note.startswith(f"{conf}: astuner.data.max_prompt_length: 512 is accepted for compatibility and only checked")
    assert "prompts are not cut to it" in note


def tutorial_configs() -> list[Path]:
    return sorted((REPO / "tutorial").rglob("*.yaml"))


@pytest.mark.parametrize("conf", tutorial_configs(), ids=lambda p: str(p.relative_to(REPO)))
def test_every_tutorial_config_loads(conf):
    assert isinstance(load_config(conf), Config)


def test_the_packaged_defaults_load():
    assert load_config(DEFAULT_YAML) == Config()


def test_the_seed_specs_yaml_loads(tmp_path):
    spec = shared_path("ASTUNER_TEST_SEED", "seed") / "math_agent.md"
    if not spec.exists():
        pytest.skip(f"the seed spec is not at {spec} (set ASTUNER_TEST_SEED)")
    blocks = re.findall(r"```yaml\n(.*?)```", spec.read_text(encoding="utf-8"), flags=re.S)
    assert blocks, "the seed spec has no YAML block"
    for number, block in enumerate(blocks):
        cfg = load_config(write(tmp_path, block, f"seed_{number}.yaml"))
        assert cfg.astuner.task_judge.judge_protocol.endswith("->MathAnswerAndLlmAsJudge")
