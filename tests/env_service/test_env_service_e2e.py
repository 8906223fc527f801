"""The env_service tutorial end to end: a real service process, the real CLI, the debug backbone.

The example quiz service runs as ``python -m tutorial.example_env_agent.quiz_server --port 0`` (the
kernel picks a free port; the server prints it), the model is the ``scripted`` engine replaying
``tutorial/example_env_agent/data/scripted_replies.jsonl``, and ``EnvServiceJudge`` scores every
rollout through the service. Failure tests kill the service mid-run (it SIGKILLs itself at a given
step request) or make it slower than the client's timeout, and check what the run reports and
that no instance or process is left behind.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from astuner.cli import main
from astuner.env_service import EnvClient
from tests.conftest import REPO

pytestmark = pytest.mark.integration

YAML = "tutorial/example_env_agent/env_agent.yaml"
REWARDS = {"dev-0": (1.5, True), "dev-1": (1.5, True), "dev-2": (0.25, False), "dev-3": (0.0, False)}


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    """One ASTUNER_CACHE for the module, so the tiny tokenizer is built once."""
    return tmp_path_factory.mktemp("astuner-cache")


def start_service(*options: str) -> tuple[subprocess.Popen, str]:
    """The example service in a child process; returns it and its URL (read from its first line)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tutorial.example_env_agent.quiz_server", "--port", "0", *options],
        cwd=REPO, stdout=subprocess.PIPE, text=True,
    )
    line = process.stdout.readline().strip()
    assert line.startswith("env service listening on http://"), line
    return process, line.rsplit(" ", 1)[1]


def stop_service(process: subprocess.Popen) -> int:
    if process.poll() is None:
        process.terminate()
    code = process.wait(timeout=10)
    process.stdout.close()
    return code


@pytest.fixture
def no_new_children():
    """Fails the test if it leaves a live child process that was not there when it started.

    The Python tool's sandbox pool (process-wide, started by earlier tests) is shut down first, so
    its idle sandboxes neither count nor refill in the background during the check.
    """
    from astuner.tool import shutdown

    shutdown()
    before = set(child_pids())
    yield
    assert set(child_pids()) - before == set()


def child_pids() -> list[int]:
    """Live (non-zombie) children of this test process."""
    children = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":\t", 1) for line in status.read_text().splitlines() if ":\t" in line)
        except OSError:
            continue
        if fields.get("PPid", "").strip() == str(os.getpid()) and not fields.get("State", "").startswith("Z"):
            children.append(int(status.parent.name))
    return children


def run_debug(url: str, tmp_path: Path, cache: Path, monkeypatch, capsys, *overrides: str) -> tuple[int, dict, list, str]:
    monkeypatch.chdir(REPO)
    monkeypatch.setenv("ASTUNER_CACHE", str(cache))
    exp = tmp_path / "exp"
    code = main(["--conf", YAML, "--backbone=debug", "--exp-dir", str(exp),
                 f"astuner.task_reader.env_service.env_url={url}", *overrides])
    err = capsys.readouterr().err
    (run,) = list(exp.iterdir())
    summary = json.loads((run / "summary.json").read_text())
    rollouts = [json.loads(line) for line in (run / "rollouts" / "debug.jsonl").read_text().splitlines()]
    return code, summary, rollouts, err


def test_tutorial_run_scores_every_rollout_through_the_service(tmp_path, monkeypatch, capsys, cache_dir, no_new_children):
    record = tmp_path / "record.json"
    process, url = start_service("--record", str(record))
    try:
        code, summary, rollouts, _ = run_debug(url, tmp_path, cache_dir, monkeypatch, capsys)
        assert EnvClient(url).call("instances", {})["data"] == {}
    finally:
        assert stop_service(process) == 0
    assert code == 0
    assert summary["rollouts"] == 8 and summary["failed_rollouts"] == 0
    assert summary["success_rate"] == 0.5 and summary["reward_mean"] == pytest.approx(0.8125)
    assert summary["env/errors"] == 0 and summary["env/unreleased_instances"] == 0
    assert summary["env/steps_per_rollout"] == 1.5
    for r in rollouts:
        assert (r["reward"], r["is_success"]) == REWARDS[r["task_id"]], r["task_id"]
    first_user = next(m for m in rollouts[0]["messages"] if m["role"] == "user")
    assert "Arithmetic quiz with 2 questions" in str(first_user["content"])
    kept = json.loads(record.read_text())
    assert kept["live"] == {} and len(kept["created"]) == 8 and sorted(kept["created"]) == sorted(kept["released"])


def test_service_killed_mid_run_is_reported_and_leaves_nothing_behind(tmp_path, monkeypatch, capsys, cache_dir, no_new_children):
    record = tmp_path / "record.json"
    process, url = start_service("--record", str(record), "--crash-on-step", "3")
    start = time.monotonic()
    try:
        code, summary, rollouts, err = run_debug(
            url, tmp_path, cache_dir, monkeypatch, capsys,
            "astuner.task_reader.shuffle=false", "astuner.rollout.num_repeat=1", "astuner.debug.debug_first_n_tasks=3",
            "astuner.debug.debug_max_parallel=1", "astuner.task_reader.env_service.retry_backoff_s=0.05",
        )
    finally:
        exit_code = stop_service(process)
    assert time.monotonic() - start < 60
    assert exit_code == -9  # it died of SIGKILL at its third step request, as arranged
    # dev-0 finished (steps 1 and 2); dev-1 lost the service at its first step; dev-2 found it gone.
    assert code == 0
    assert summary["rollouts"] == 3 and summary["failed_rollouts"] == 2 and summary["env/errors"] == 2
    by_task = {r["task_id"]: r for r in rollouts}
    assert (by_task["dev-0"]["reward"], by_task["dev-0"]["error"]) == (1.5, None)
    step_lost = by_task["dev-1"]["error"]
    assert step_lost.startswith(f"EnvServiceError: env service {url}: ")
    assert "step failed (connection lost: " in step_lost
    assert f"env service {url}: create (instance " in by_task["dev-2"]["error"]
    assert "connection refused" in by_task["dev-2"]["error"]
    assert "2 rollout(s) failed" in err and url in err
    # Read without restarting the service: only the instance in use when it died was still live.
    kept = json.loads(record.read_text())
    assert list(kept["live"].values()) == ["dev-1"] and len(kept["created"]) == 2
    assert set(kept["created"]) - set(kept["released"]) == set(kept["live"])
    assert summary["env/unreleased_instances"] == 1  # its release was attempted, failed, and counted


def test_slow_service_times_out_and_instances_are_still_released(tmp_path, monkeypatch, capsys, cache_dir, no_new_children):
    process, url = start_service("--step-delay-s", "3")
    start = time.monotonic()
    try:
        code, summary, rollouts, _ = run_debug(
            url, tmp_path, cache_dir, monkeypatch, capsys,
            "astuner.rollout.num_repeat=1", "astuner.debug.debug_first_n_tasks=2",
            "astuner.task_reader.env_service.timeout_s=0.5",
        )
        elapsed = time.monotonic() - start
        assert EnvClient(url).call("instances", {})["data"] == {}
    finally:
        assert stop_service(process) == 0
    assert elapsed < 30
    assert code == 1  # every rollout failed
    assert summary["failed_rollouts"] == 2 and summary["env/unreleased_instances"] == 0
    for r in rollouts:
        assert f"env service {url}: " in r["error"] and "no response within 0.5 s" in r["error"]


SEED_STYLE = '''
import re

from astuner import AgentScopeLearnProtocol


class SeedQuiz(AgentScopeLearnProtocol):
    """Seed style, no model calls: answers every question from the observation text."""

    async def agentscope_execute(self, init_messages, astune_proxy, config):
        workflow_task = astune_proxy.get_agentscope_input_dictionary()["workflow_task"]
        text, terminated = init_messages[0]["content"], False
        while not terminated:
            expression = re.search(r"what is (.+)\\?", text).group(1)
            text, _, terminated, _ = workflow_task.gym_env.legacy_step(str(eval(expression)))  # gym's 4-tuple
        astune_proxy.update_judge_input_dictionary(final_answer=text)
        return astune_proxy


class SeedJudge:
    """Upstream's judge style: reads ``env`` from the judge input dictionary."""

    def __init__(self, config):
        self.config = config

    def compute_reward(self, judge_input_dictionary):
        task = judge_input_dictionary["workflow_task"]
        raw = judge_input_dictionary["env"].evaluate(task.task_env_uuid, params={"sparse": True})
        return raw, raw >= 1
'''


def test_seed_style_workflow_and_judge_get_the_env(tmp_path, monkeypatch, capsys, cache_dir, no_new_children):
    from tutorial.example_env_agent.quiz_server import serve_in_thread

    module = tmp_path / "seed_quiz.py"
    module.write_text(SEED_STYLE)
    with serve_in_thread() as url:
        code, summary, rollouts, _ = run_debug(
            url, tmp_path, cache_dir, monkeypatch, capsys, "astuner.rollout.num_repeat=1",
            f"astuner.rollout.agentscope_workflow={module}->SeedQuiz",
            f"astuner.task_judge.judge_protocol={module}->SeedJudge",
        )
        assert EnvClient(url).call("instances", {})["data"] == {}
    assert code == 0 and summary["failed_rollouts"] == 0 and summary["success_rate"] == 1.0
    assert summary["env/steps_per_rollout"] == 2.0
    assert all("2 of 2 correct" in r["final_answer"] for r in rollouts)
