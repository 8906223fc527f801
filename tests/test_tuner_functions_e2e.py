"""agentscope.tuner-style workflow and judge functions end to end through the real CLI.

The tutorial's functions (``tutorial/example_agentscope_tuner``) on the debug backbone with scripted
replies; auxiliary models reaching a stand-in OpenAI-compatible server; a workflow reward that skips
the judge; and the local backbone training one step through the same resolution.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from astuner.cli import main
from tests.conftest import REPO

pytestmark = pytest.mark.integration

TUTORIAL = "tutorial/example_agentscope_tuner/math_agent_offline.yaml"

FUNCTIONS = '''
from agentscope.tuner import JudgeOutput, WorkflowOutput


async def ask_once(task, model, auxiliary_models):
    reply = await model([{"role": "user", "content": task["question"]}])
    text = "".join(block.get("text", "") for block in reply.content if block.get("type") == "text")
    return WorkflowOutput(response=text, metrics={"aux_models": float(len(auxiliary_models))})


async def grade_with_llm(task, response, auxiliary_models):
    verdict = await auxiliary_models["grader"]([
        {"role": "user", "content": f"Reference: {task['answer']}\\nAnswer: {response}\\nCorrect?"},
    ])
    text = "".join(block.get("text", "") for block in verdict.content if block.get("type") == "text")
    correct = text.strip() == "<Correct>"
    return JudgeOutput(reward=1.0 if correct else 0.0, metrics={"graded": 1.0})


async def half_reward(task, model):
    await model([{"role": "user", "content": task["question"]}])
    return WorkflowOutput(reward=0.5, response="scored by the workflow")


async def never_called(task, response):
    raise AssertionError("the judge must not run when the workflow set a reward")
'''


class _Grader(BaseHTTPRequestHandler):
    """An OpenAI-compatible chat endpoint answering <Correct> when the question is task offline-0's."""

    requests: list[dict] = []

    def do_POST(self):  # noqa: N802 (http.server naming)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
        asked = json.dumps(body["messages"])
        verdict = "<Correct>" if "muffins" in asked else "<NotCorrect>"
        reply = {
            "id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": verdict}}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def run_cli(args: list[str], tmp_path: Path, monkeypatch, capsys, backbone: str = "debug") -> tuple[int, str, Path]:
    monkeypatch.chdir(REPO)
    monkeypatch.setenv("ASTUNER_CACHE", str(tmp_path / "cache"))
    exp = tmp_path / "exp"
    code = main([*args[:2], f"--backbone={backbone}", "--exp-dir", str(exp), *args[2:]])
    return code, capsys.readouterr().err, exp


def only_run(exp: Path) -> Path:
    (run,) = list(exp.iterdir())
    return run


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def functions_file(tmp_path: Path) -> Path:
    path = tmp_path / "functions.py"
    path.write_text(FUNCTIONS)
    return path


def test_tutorial_functions_run_offline_with_the_judge_function(tmp_path, monkeypatch, capsys):
    code, err, exp = run_cli(["--conf", TUTORIAL], tmp_path, monkeypatch, capsys)
    assert code == 0, err
    run = only_run(exp)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["rollouts"] == 16 and summary["failed_rollouts"] == 0
    assert summary["success_rate"] == pytest.approx(0.875) and summary["reward_mean"] == pytest.approx(0.875)
    rows = records(run / "rollouts" / "debug.jsonl")
    for r in rows:
        assert r["metrics"] == {"is_success": float(r["is_success"])}
        assert r["raw_reward"] == (1.0 if r["is_success"] else 0.0)
        assert "\\boxed{" in r["final_answer"]
        assert len(r["samples"]) == 1 and sum(r["samples"][0]["loss_mask"]) > 0
    assert {r["task_id"] for r in rows if not r["is_success"]} == {"offline-6"}


def test_auxiliary_models_reach_workflow_and_judge_functions(tmp_path, monkeypatch, capsys):
    functions = functions_file(tmp_path)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Grader)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("GRADER_KEY", "grader-secret")
    _Grader.requests = []
    grader = f"{{base_url: 'http://127.0.0.1:{server.server_port}/v1', model_name: grader-7b, api_key_env: GRADER_KEY}}"
    try:
        code, err, exp = run_cli([
            "--conf", TUTORIAL,
            f"astuner.rollout.agentscope_workflow={functions}->ask_once",
            f"astuner.task_judge.judge_protocol={functions}->grade_with_llm",
            f"astuner.rollout.auxiliary_models={{grader: {grader}}}",
            "astuner.task_reader.shuffle=false",
            "astuner.debug.debug_first_n_tasks=2",
        ], tmp_path, monkeypatch, capsys)
    finally:
        server.shutdown()
    assert code == 0, err
    rows = records(only_run(exp) / "rollouts" / "debug.jsonl")
    assert len(rows) == 4 and all(r["error"] is None for r in rows)
    assert {(r["task_id"], r["raw_reward"], r["is_success"]) for r in rows} == {("offline-0", 1.0, True), ("offline-1", 0.0, False)}
    assert all(r["metrics"] == {"aux_models": 1.0, "graded": 1.0} for r in rows)
    assert all(r["num_calls"] == 1 and sum(r["samples"][0]["loss_mask"]) > 0 for r in rows)
    assert len(_Grader.requests) == 4
    assert {q["body"]["model"] for q in _Grader.requests} == {"grader-7b"}
    assert {q["auth"] for q in _Grader.requests} == {"Bearer grader-secret"}
    assert {q["path"] for q in _Grader.requests} == {"/v1/chat/completions"}


def test_a_workflow_reward_skips_the_judge(tmp_path, monkeypatch, capsys):
    functions = functions_file(tmp_path)
    code, err, exp = run_cli([
        "--conf", TUTORIAL,
        f"astuner.rollout.agentscope_workflow={functions}->half_reward",
        f"astuner.task_judge.judge_protocol={functions}->never_called",
        "astuner.debug.debug_first_n_tasks=2",
    ], tmp_path, monkeypatch, capsys)
    assert code == 0, err
    rows = records(only_run(exp) / "rollouts" / "debug.jsonl")
    assert len(rows) == 4
    assert all((r["error"], r["raw_reward"], r["is_success"]) == (None, 0.5, False) for r in rows)
    assert all(r["final_answer"] == "scored by the workflow" for r in rows)


def test_an_invalid_function_fails_before_the_run_starts(tmp_path, monkeypatch, capsys):
    functions = functions_file(tmp_path)
    code, err, exp = run_cli([
        "--conf", TUTORIAL, f"astuner.rollout.agentscope_workflow={functions}->grade_with_llm",
    ], tmp_path, monkeypatch, capsys)
    assert code == 2 and not exp.exists()
    assert len(err.strip().splitlines()) == 1
    assert "astuner.rollout.agentscope_workflow" in err and "Missing essential parameters: ['model']" in err


def test_local_backbone_trains_a_step_of_the_tutorial_functions(tmp_path, monkeypatch, capsys):
    code, err, exp = run_cli([
        "--conf", TUTORIAL,
        "astuner.experiment_name=functions_local",
        "astuner.rollout.engine.type=transformers",
        "astuner.rollout.max_response_length_in_one_turn=16",
        "astuner.rollout.max_model_len=4096",
        "astuner.rollout.compute_madness_checklist=[]",
        "astuner.data.train_batch_size=2",
        "astuner.data.max_prompt_length=2000",
        "astuner.data.max_response_length=2000",
        "astuner.trainer_common.test_freq=100",
        "astuner.local.max_steps=1",
    ], tmp_path, monkeypatch, capsys, backbone="local")
    assert code == 0, err
    run = exp / "functions_local"
    (step,) = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert step["step"] == 1 and step["failed_rollouts"] == 0 and step["samples"] > 0
    rows = records(run / "rollouts" / "step_000001.jsonl")
    assert len(rows) == 4 and all(r["error"] is None for r in rows)
    assert all(r["metrics"] == {"is_success": float(r["is_success"])} for r in rows)


def test_trinity_workers_run_the_same_functions(tmp_path, monkeypatch):
    """The trinity backbone's worker processes resolve the config through the same code and roll out
    with the same runner (here in-process, with the scripted engine instead of Trinity's vLLM)."""
    import asyncio

    from astuner.backbone.trinity.worker import runtime, tasks_for_split
    from astuner.engine.scripted_engine import ScriptedEngine
    from astuner.schema import Task
    from astuner.tuner_functions import FunctionJudge, FunctionWorkflow

    monkeypatch.setenv("ASTUNER_CACHE", str(tmp_path / "cache"))
    worker = runtime(str(REPO / TUTORIAL))
    assert issubclass(worker.workflow_cls, FunctionWorkflow) and isinstance(worker.judge, FunctionJudge)
    engine = ScriptedEngine(worker.config.astuner.rollout.engine.scripted.path, worker.tokenizer,
                            worker.template.turn.end_of_turn_id)
    tasks = {t["task_id"]: Task(**t) for t in tasks_for_split(worker.config, "train")}
    results = [asyncio.run(worker.rollouts(engine).run(tasks[task_id], 0)) for task_id in ("offline-0", "offline-6")]
    assert [(r.error, r.raw_reward, r.is_success) for r in results] == [(None, 1.0, True), (None, 0.0, False)]
    assert all(r.samples and r.metrics == {"is_success": float(r.is_success)} for r in results)
