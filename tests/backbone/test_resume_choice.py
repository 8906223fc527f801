"""A rerun names the run it resumes from the start (``astuner.backbone.resume``), and only that one.

Run folders are laid out as the local backbone leaves them (checkpoints written by the real
``save_checkpoint``, with stand-ins for the model; ``DONE`` once finished); the backbone itself is
replaced by a stub, so these tests check the choice and what the CLI prints, not training (the
SIGKILL-and-rerun of real training is ``test_local_backbone.py``).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from astuner.backbone.resume import choose_run
from astuner.cli import main
from astuner.config import load_config

FLOW = "class Flow:\n    async def execute(self, workflow_task, model_tuner):\n        return None\n"


def write_config(folder: Path, name: str = "math_agent", extra: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "flow.py").write_text(FLOW)
    conf = folder / f"{name}.yaml"
    conf.write_text(
        "astuner:\n"
        "  task_reader: {type: random_dummy}\n"
        "  rollout: {agentscope_workflow: 'flow.py->Flow'}\n"
        "  model: {path: 'astuner://tiny'}\n" + extra
    )
    return conf


class _Saves:
    """Stands in for the model and the tokenizer: ``save_pretrained`` writes a marker file."""

    def save_pretrained(self, path: Path) -> None:
        Path(path).mkdir(parents=True, exist_ok=True)
        (Path(path) / "saved").write_text("1")


def make_run(root: Path, name: str, step: int | None = 2, done: bool = False) -> Path:
    """A run folder as the local backbone leaves it, its checkpoint written by the real ``save_checkpoint``."""
    import torch

    from astuner.backbone.checkpoint import DONE_MARKER, save_checkpoint

    run = root / name
    run.mkdir(parents=True)
    if step is not None:
        optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
        save_checkpoint(run, step, _Saves(), _Saves(), optimizer, {"cursor": 0})
    if done:
        (run / DONE_MARKER).write_text(f"{step}\n")
    return run


def choice(conf: Path, root: Path, backbone: str = "local"):
    return choose_run(load_config(conf, backbone=backbone), conf, root)


def test_newest_unfinished_run_of_the_same_config_is_chosen(tmp_path):
    conf = write_config(tmp_path / "conf")
    root = tmp_path / "exp"
    make_run(root, "math_agent_20250101_1000")
    newest = make_run(root, "math_agent_20250102_1000", step=4)
    make_run(root, "math_agent_20250103_1000", done=True)  # finished: not resumed
    make_run(root, "math_agent_20250104_1000", step=None)  # no checkpoint yet: nothing to resume
    make_run(root, "math_agent_offline_20250105_1000")  # another config whose name starts alike
    got = choice(conf, root)
    assert (got.name, got.directory) == (newest.name, newest)
    assert got.resume_from == newest / "checkpoints" / "step_4"


def test_no_resume_for_other_backbones_or_when_disabled(tmp_path):
    conf = write_config(tmp_path / "conf")
    root = tmp_path / "exp"
    make_run(root, "math_agent_20250101_1000")
    stamp = f"math_agent_{datetime.now():%Y%m%d}_"
    assert choice(conf, root, backbone="debug").name.startswith(stamp)
    disabled = write_config(tmp_path / "off", extra="  local: {resume_mode: disable}\n")
    got = choice(disabled, root)
    assert got.resume_from is None and got.name.startswith(stamp)


def test_a_named_run_resumes_only_itself(tmp_path):
    conf = write_config(tmp_path / "conf", extra="  experiment_name: mine\n")
    root = tmp_path / "exp"
    make_run(root, "math_agent_20250101_1000")
    assert choice(conf, root).resume_from is None and choice(conf, root).name == "mine"
    make_run(root, "mine", step=6)
    got = choice(conf, root)
    assert got.name == "mine" and got.resume_from == root / "mine" / "checkpoints" / "step_6"


def test_cli_prints_the_resumed_name_and_creates_no_other_folder(tmp_path, monkeypatch, capsys):
    conf = write_config(tmp_path / "conf")
    root = tmp_path / "exp"
    old = make_run(root, "math_agent_20250101_1000")
    seen: list[Path] = []

    def fake_backbone(config, exp_dir, args):
        seen.append(exp_dir)
        return 0

    monkeypatch.setattr("astuner.backbone.load_backbone", lambda name: fake_backbone)
    assert main(["--conf", str(conf), "--backbone=local", "--exp-dir", str(root)]) == 0
    out = capsys.readouterr().out
    assert seen == [old]
    assert f"astuner: experiment {old.name} -> {old} (resuming from step_2)" in out
    assert sorted(p.name for p in root.iterdir()) == [old.name]
    assert (old / "yaml_backup.yaml").exists()


@pytest.mark.parametrize("backbone", ["debug", "local"])
def test_cli_new_run_gets_a_new_name(backbone, tmp_path, monkeypatch, capsys):
    conf = write_config(tmp_path / "conf")
    root = tmp_path / "exp"
    make_run(root, "math_agent_20250101_1000", done=True)
    monkeypatch.setattr("astuner.backbone.load_backbone", lambda name: lambda config, exp_dir, args: 0)
    assert main(["--conf", str(conf), f"--backbone={backbone}", "--exp-dir", str(root)]) == 0
    out = capsys.readouterr().out
    (new,) = [p for p in root.iterdir() if p.name != "math_agent_20250101_1000"]
    assert f"astuner: experiment {new.name} -> {new}\n" in out
