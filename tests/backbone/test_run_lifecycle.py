"""A debug run through the real CLI, from start to any end: finished rollouts are never lost, the
summary counts failures, config errors create nothing and import nothing heavy, any cwd works.

The workflow here needs no model knowledge: each task's ``mode`` says whether its rollout
finishes (``ok``: one scripted-engine call, then success), raises (``fail``), or blocks forever
(``block``), so a run can be stopped at a moment when exactly the non-blocking rollouts finished.
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

from astuner.cli import main
from tests.conftest import REPO

pytestmark = pytest.mark.integration

OFFLINE = REPO / "tutorial" / "example_math_agent" / "math_agent_offline.yaml"

WORKFLOW = '''
import asyncio

from astuner import Workflow, WorkflowOutput


class ByMode(Workflow):
    async def execute(self, workflow_task, model_tuner):
        mode = workflow_task.task.metadata["mode"]
        if mode == "block":
            await asyncio.sleep(3600)
        if mode == "fail":
            raise RuntimeError("planned failure of task " + workflow_task.task.task_id)
        await model_tuner([{"role": "user", "content": workflow_task.task.main_query}])
        return WorkflowOutput(reward=1.0, is_success=True, metadata={"final_answer": "done"})
'''


def write_run(folder: Path, modes: list[str]) -> Path:
    """A config (and its files, written next to it with relative paths) for one task per mode."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "by_mode.py").write_text(WORKFLOW)
    with (folder / "tasks.jsonl").open("w") as f:
        for i, mode in enumerate(modes):
            f.write(json.dumps({"task_id": str(i), "question": f"task {i}", "mode": mode}) + "\n")
    (folder / "replies.jsonl").write_text(json.dumps({"default": True, "replies": ["fine"]}) + "\n")
    conf = folder / "by_mode.yaml"
    conf.write_text(
        "astuner:\n"
        "  task_reader:\n"
        "    type: jsonl_dataset_file\n"
        "    shuffle: false\n"
        "    jsonl_dataset_file: {training: {file_path: tasks.jsonl}}\n"
        "  rollout:\n"
        "    agentscope_workflow: by_mode.py->ByMode\n"
        "    num_repeat: 1\n"
        "    engine: {type: scripted, scripted: {path: replies.jsonl}}\n"
        "  model: {path: 'astuner://tiny'}\n"
        f"  debug: {{debug_first_n_tasks: {len(modes)}, debug_max_parallel: {len(modes)}}}\n"
    )
    return conf


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("astuner_cache")


def child_env(cache: Path) -> dict[str, str]:
    return {**os.environ, "ASTUNER_CACHE": str(cache), "CI": "1", "AGENTSCOPE_DISABLE_CONSOLE_OUTPUT": "true"}


def lines_of(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


@pytest.mark.parametrize("sig, code, name", [(signal.SIGINT, 130, "SIGINT"), (signal.SIGTERM, 143, "SIGTERM")])
def test_signal_keeps_finished_rollouts_and_writes_the_summary(sig, code, name, tmp_path, cache):
    conf = write_run(tmp_path / "conf", ["ok", "ok", "fail", "block", "block"])
    exp = tmp_path / "exp"
    cmd = [sys.executable, "-m", "astuner", "--conf", str(conf), "--backbone=debug", "--exp-dir", str(exp)]
    child = subprocess.Popen(cmd, cwd=tmp_path, env=child_env(cache), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while len(lines_of(next(exp.glob("*/rollouts/debug.jsonl"), exp / "none"))) < 3:
            assert child.poll() is None, child.communicate()
            assert time.monotonic() < deadline, "the three non-blocking rollouts did not finish"
            time.sleep(0.1)
        child.send_signal(sig)
        out, err = child.communicate(timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == code, err
    (run,) = list(exp.iterdir())
    rows = [json.loads(line) for line in lines_of(run / "rollouts" / "debug.jsonl")]
    assert sorted(r["task_id"] for r in rows) == ["0", "1", "2"]
    assert [r["error"] is not None for r in sorted(rows, key=lambda r: r["task_id"])] == [False, False, True]
    assert all(r["samples"] for r in rows if r["error"] is None)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["stopped_by"] == name
    assert summary["rollouts"] == 3 and summary["planned_rollouts"] == 5
    assert summary["failed_rollouts"] == 1 and summary["successes"] == 2
    assert summary["success_rate"] == pytest.approx(2 / 3)
    assert f"stopped by {name} after 3 of 5 rollouts" in out
    assert "success rate 0.667 (2/3, 1 failed)" in out


def test_failed_rollout_counts_as_a_failure_in_the_success_rate(tmp_path, cache, monkeypatch, capsys):
    conf = write_run(tmp_path / "conf", ["ok", "ok", "ok", "fail"])
    monkeypatch.setenv("ASTUNER_CACHE", str(cache))
    monkeypatch.chdir(tmp_path)
    code = main(["--conf", str(conf), "--backbone=debug", "--exp-dir", str(tmp_path / "exp")])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "success rate 0.750 (3/4, 1 failed)" in out
    assert "planned failure of task 3" in err
    (run,) = list((tmp_path / "exp").iterdir())
    summary = json.loads((run / "summary.json").read_text())
    assert summary["success_rate"] == 0.75 and summary["reward_mean"] == 1.0  # reward: finished rollouts only
    assert summary["stopped_by"] is None
    assert summary["failures"] == [{"rollout_id": summary["failures"][0]["rollout_id"],
                                    "error": "RuntimeError: planned failure of task 3"}]


def test_readme_main_job_from_another_directory(tmp_path, cache):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = subprocess.run(
        ["astuner", "--conf", str(OFFLINE), "--backbone=debug", "--exp-dir", "exp"],
        cwd=elsewhere, env=child_env(cache), capture_output=True, text=True, timeout=240,
    )
    assert out.returncode == 0, out.stderr
    assert "success rate 0.875 (14/16, 0 failed)" in out.stdout
    assert "note:" not in out.stderr  # the tutorial's paths are relative to its own folder
    (run,) = list((elsewhere / "exp").iterdir())
    assert len(lines_of(run / "rollouts" / "debug.jsonl")) == 16


def test_readme_main_job_with_a_config_path_relative_to_another_cwd(tmp_path, cache, monkeypatch, capsys):
    elsewhere = tmp_path / "a" / "b"
    elsewhere.mkdir(parents=True)
    monkeypatch.chdir(elsewhere)
    monkeypatch.setenv("ASTUNER_CACHE", str(cache))
    relative = os.path.relpath(OFFLINE, elsewhere)
    assert main(["--conf", relative, "--backbone=debug", "--exp-dir", "exp", "astuner.debug.debug_first_n_tasks=2"]) == 0
    assert "success rate" in capsys.readouterr().out
    (run,) = list((elsewhere / "exp").iterdir())
    assert len(lines_of(run / "rollouts" / "debug.jsonl")) == 4


CONFIG_ERROR_PROBE = """
import json, sys
from astuner.cli import main
code = main(sys.argv[1:])
print(json.dumps({"code": code, "heavy": [m for m in ("torch", "transformers", "agentscope") if m in sys.modules]}))
"""


@pytest.mark.parametrize("case", ["missing_module", "missing_dataset", "broken_dataset"])
def test_config_error_path_imports_nothing_heavy_and_creates_nothing(case, tmp_path, cache):
    conf = write_run(tmp_path / "conf", ["ok"])
    text = conf.read_text()
    if case == "missing_module":
        text = text.replace("by_mode.py->ByMode", "no_such_package.flows->ByMode")
    elif case == "missing_dataset":
        text = text.replace("file_path: tasks.jsonl", "file_path: missing.jsonl")
    else:
        (tmp_path / "conf" / "tasks.jsonl").write_text('{"question": "fine"}\n{"question": \n')
    conf.write_text(text)
    exp = tmp_path / "exp"
    out = subprocess.run(
        [sys.executable, "-c", CONFIG_ERROR_PROBE, "--conf", str(conf), "--backbone=debug", "--exp-dir", str(exp)],
        cwd=tmp_path, env=child_env(cache), capture_output=True, text=True, timeout=120,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {"code": 2, "heavy": []}, out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and "by_mode.yaml: astuner." in out.stderr
    assert not exp.exists()
