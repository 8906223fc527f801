"""Config checks before a run creates anything, and the rule for relative paths in a config.

Relative paths resolve against the config file's folder; a path found only relative to the
working directory (seed-era configs written for the repository root) is used with a note; a
command-line override is relative to the working directory; a missing path is one line naming
every path tried. In-process and light: the workflows here are small files, not agentscope code.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from astuner.cli import main
from astuner.config import ConfigError, load_config, load_config_for_run

LIGHT_WORKFLOW = "class Flow:\n    async def execute(self, workflow_task, model_tuner):\n        return None\n"


def make_project(root: Path, *, tasks: str = "data/tasks.jsonl", workflow: str = "flows/flow.py->Flow") -> Path:
    """``root/configs/run.yaml`` naming files below ``root/configs`` with relative paths."""
    configs = root / "configs"
    (configs / "data").mkdir(parents=True)
    (configs / "flows").mkdir()
    (configs / "flows" / "flow.py").write_text(LIGHT_WORKFLOW)
    (configs / "data" / "tasks.jsonl").write_text(json.dumps({"question": "1+1?"}) + "\n")
    (configs / "data" / "replies.jsonl").write_text(json.dumps({"default": True, "replies": ["2"]}) + "\n")
    conf = configs / "run.yaml"
    conf.write_text(
        "astuner:\n"
        f"  task_reader: {{type: jsonl_dataset_file, jsonl_dataset_file: {{training: {{file_path: {tasks}}}}}}}\n"
        f"  rollout: {{agentscope_workflow: '{workflow}', engine: {{type: scripted, scripted: {{path: data/replies.jsonl}}}}}}\n"
        "  model: {path: 'astuner://tiny'}\n"
    )
    return conf


def run_cli(conf: Path, tmp_path: Path, capsys, *overrides: str) -> tuple[int, str]:
    code = main(["--conf", str(conf), "--backbone=debug", "--exp-dir", str(tmp_path / "exp"), *overrides])
    return code, capsys.readouterr().err.strip()


def test_relative_paths_resolve_against_the_config_folder(tmp_path, monkeypatch):
    conf = make_project(tmp_path)
    monkeypatch.chdir(tmp_path)  # not the config's folder
    loaded = load_config_for_run(conf, backbone="debug")
    a = loaded.config.astuner
    assert a.task_reader.jsonl_dataset_file.training.file_path == str(conf.parent / "data" / "tasks.jsonl")
    assert a.rollout.engine.scripted.path == str(conf.parent / "data" / "replies.jsonl")
    assert a.rollout.agentscope_workflow == f"{conf.parent / 'flows' / 'flow.py'}->Flow"
    assert a.model.path == "astuner://tiny" and a.task_judge.judge_protocol.startswith("astuner.")
    assert loaded.notes == []


def test_the_config_folder_wins_over_the_working_directory(tmp_path, monkeypatch):
    conf = make_project(tmp_path)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "tasks.jsonl").write_text("{}\n")
    monkeypatch.chdir(tmp_path)
    loaded = load_config_for_run(conf, backbone="debug")
    assert loaded.config.astuner.task_reader.jsonl_dataset_file.training.file_path == str(conf.parent / "data" / "tasks.jsonl")


def test_seed_era_path_relative_to_the_working_directory_still_works_with_a_note(tmp_path, monkeypatch):
    conf = make_project(tmp_path, tasks="configs/data/tasks.jsonl")  # written for cwd = tmp_path
    monkeypatch.chdir(tmp_path)
    loaded = load_config_for_run(conf, backbone="debug")
    assert loaded.config.astuner.task_reader.jsonl_dataset_file.training.file_path == str(conf.parent / "data" / "tasks.jsonl")
    (note,) = loaded.notes
    assert note.startswith(f"{conf}: astuner.task_reader.jsonl_dataset_file.training.file_path: ")
    assert "configs/data/tasks.jsonl" in note and "working directory" in note


def test_overrides_are_relative_to_the_working_directory(tmp_path, monkeypatch):
    conf = make_project(tmp_path)
    (tmp_path / "other.jsonl").write_text(json.dumps({"default": True, "replies": ["3"]}) + "\n")
    monkeypatch.chdir(tmp_path)
    cfg = load_config(conf, ["astuner.rollout.engine.scripted.path=other.jsonl"])
    assert cfg.astuner.rollout.engine.scripted.path == str(tmp_path / "other.jsonl")
    with pytest.raises(ConfigError) as info:  # next to the config does not count for an override
        load_config_for_run(conf, ["astuner.rollout.engine.scripted.path=data/replies.jsonl"])
    assert f"tried {tmp_path / 'data' / 'replies.jsonl'})" in str(info.value)


def test_missing_path_names_every_path_tried(tmp_path, monkeypatch):
    conf = make_project(tmp_path, tasks="data/nope.jsonl")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as info:
        load_config_for_run(conf, backbone="debug")
    text = str(info.value)
    assert text.startswith(f"{conf}: astuner.task_reader.jsonl_dataset_file.training.file_path: file not found")
    assert str(conf.parent / "data" / "nope.jsonl") in text and str(tmp_path / "data" / "nope.jsonl") in text
    assert "\n" not in text


def test_unused_and_hub_id_paths_are_left_alone(tmp_path, monkeypatch):
    conf = make_project(tmp_path)
    monkeypatch.chdir(tmp_path)
    cfg = load_config(conf, ["astuner.task_reader.type=random_dummy", "astuner.rollout.engine.type=transformers",
                             "astuner.rollout.engine.scripted.path=nowhere.jsonl", "astuner.model.path=Qwen/Qwen2.5-0.5B"])
    assert cfg.astuner.rollout.engine.scripted.path == "nowhere.jsonl"
    assert cfg.astuner.model.path == "Qwen/Qwen2.5-0.5B"
    assert cfg.astuner.task_reader.huggingface_dat_repo.dataset_path == "openai/gsm8k"


def test_a_local_model_folder_next_to_the_config_is_found(tmp_path, monkeypatch):
    conf = make_project(tmp_path)
    (conf.parent / "models" / "mine").mkdir(parents=True)
    conf.write_text(conf.read_text().replace("astuner://tiny", "models/mine"))
    monkeypatch.chdir(tmp_path)
    assert load_config(conf).astuner.model.path == str(conf.parent / "models" / "mine")


BROKEN = {
    "missing_module": ({"workflow": "no_such_pkg.flows->Flow"}, "astuner.rollout.agentscope_workflow", "not found"),
    "missing_class": ({"workflow": "flows/flow.py->Flwo"}, "astuner.rollout.agentscope_workflow", "no attribute 'Flwo'"),
    "missing_file": ({"workflow": "flows/nope.py->Flow"}, "astuner.rollout.agentscope_workflow", "file not found"),
    "not_a_workflow": ({"workflow": "flows/flow.py->LIGHT"}, "astuner.rollout.agentscope_workflow", "not a workflow"),
    "missing_dataset": ({"tasks": "data/nope.jsonl"}, "astuner.task_reader.jsonl_dataset_file.training.file_path",
                        "file not found"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_config_errors_create_nothing(case, tmp_path, monkeypatch, capsys):
    kwargs, key, words = BROKEN[case]
    conf = make_project(tmp_path, **kwargs)
    (conf.parent / "flows" / "flow.py").write_text(LIGHT_WORKFLOW + "LIGHT = 1\n")
    monkeypatch.chdir(tmp_path)
    code, err = run_cli(conf, tmp_path, capsys)
    assert code == 2
    assert len(err.splitlines()) == 1 and f"run.yaml: {key}: " in err and words in err, err
    assert not (tmp_path / "exp").exists()


@pytest.mark.parametrize("broken", ["tasks", "replies"])
def test_broken_data_files_create_nothing(broken, tmp_path, monkeypatch, capsys):
    conf = make_project(tmp_path)
    name, good = ("tasks.jsonl", {"question": "ok"}) if broken == "tasks" else ("replies.jsonl", {"default": True, "replies": ["x"]})
    (conf.parent / "data" / name).write_text(json.dumps(good) + '\n{"question": ,}\n')
    monkeypatch.chdir(tmp_path)
    code, err = run_cli(conf, tmp_path, capsys)
    assert code == 2 and len(err.splitlines()) == 1, err
    assert f"{name}:2" in err
    assert not (tmp_path / "exp").exists()


@pytest.mark.parametrize(("value", "local"), [
    ("Qwen/Qwen2.5-0.5B", False), ("gpt2", False), ("/models/none", True), ("./none", True),
    ("../none", True), ("~/none", True), ("saved_experiments/td/sft/model", True),
])
def test_a_model_path_that_can_only_be_local_must_exist(value, local, tmp_path, monkeypatch, capsys):
    """``org/name`` may be a Hub id (not checked: that needs the network); any other form is a folder
    that must exist before the run creates anything."""
    conf = make_project(tmp_path)
    conf.write_text(conf.read_text().replace("astuner://tiny", value))
    monkeypatch.chdir(tmp_path)
    if not local:
        assert load_config_for_run(conf, backbone="debug").config.astuner.model.path == value
        return
    code, err = run_cli(conf, tmp_path, capsys)
    assert code == 2 and "run.yaml: astuner.model.path: file not found" in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "exp").exists()


def test_an_offline_hub_model_id_must_be_cached(tmp_path, monkeypatch, capsys):
    """With the Hub offline a Hub id that is not in the cache could never load: one line, nothing created."""
    conf = make_project(tmp_path)
    conf.write_text(conf.read_text().replace("astuner://tiny", "no-such-org/no-such-model"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, err = run_cli(conf, tmp_path, capsys)
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "astuner.model.path: 'no-such-org/no-such-model' is not a local folder and, with HF_HUB_OFFLINE set" in err
    assert not (tmp_path / "exp").exists()


def test_an_env_service_that_does_not_answer_is_reported_before_anything_is_created(tmp_path, monkeypatch, capsys):
    import socket

    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    conf = make_project(tmp_path)
    monkeypatch.chdir(tmp_path)
    code, err = run_cli(conf, tmp_path, capsys, "astuner.task_reader.type=env_service",
                        f"astuner.task_reader.env_service.env_url=http://127.0.0.1:{port}")
    assert code == 2 and len(err.splitlines()) == 1, err
    assert f"astuner.task_reader.env_service.env_url: nothing answers at http://127.0.0.1:{port}" in err
    assert "start the environment service first" in err
    assert not (tmp_path / "exp").exists()


def test_a_tracker_that_is_not_installed_is_reported_before_anything_is_created(tmp_path, monkeypatch, capsys):
    import importlib.util

    if importlib.util.find_spec("swanlab") is not None:
        pytest.skip("swanlab is installed here")
    conf = make_project(tmp_path)
    monkeypatch.chdir(tmp_path)
    code = main(["--conf", str(conf), "--backbone=local", "--exp-dir", str(tmp_path / "exp"),
                 "astuner.trainer_common.logger=swanlab"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "astuner.trainer_common.logger: 'swanlab' needs the swanlab package (pip install swanlab)" in err
    assert not (tmp_path / "exp").exists()
