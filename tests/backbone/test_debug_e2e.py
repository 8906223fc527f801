"""The debug backbone end to end through the real CLI: config → reader → ReAct workflow → tool → judge.

Real parts throughout (AgentScope, the Python tool, the judges, GSM8K from disk, the tiny model
through transformers). The model's replies come from the ``scripted`` engine where a test needs
known answers — no pretrained weights can be downloaded here.
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

SEED_YAML = """\
astune:
  task_reader:
    type: huggingface_dat_repo   # also supports: dataset_file / env_service (if enabled)

  rollout:
    agentscope_workflow: tutorial.math_agent->ExampleMathLearn

  task_judge:
    judge_protocol: astune.task_judge.math_answer_as_judge->MathAnswerAndLlmAsJudge

  model:
    path: /mnt/data/model_cache/modelscope/hub/Qwen/Qwen/Qwen2___5-14B-Instruct
"""


def tool_call(name: str, args: dict) -> str:
    return "<tool_call>\n" + json.dumps({"name": name, "arguments": args}) + "\n</tool_call>"


def gsm8k_script(gsm8k_dir: Path, path: Path, *, wrong: bool = False) -> Path:
    """Scripted replies for every GSM8K test task: compute with print, then answer."""
    from datasets import load_dataset

    rows = load_dataset(str(gsm8k_dir), "main", split="test")
    with path.open("w") as f:
        for i, row in enumerate(rows):
            ref = row["answer"].split("####")[-1].strip().replace(",", "")
            ans = f"{ref}1" if wrong else ref
            replies = [
                "Let me compute it.\n" + tool_call("execute_python_code", {"code": f"print({ref})"}),
                f"So the answer is \\boxed{{{ans}}}.\n" + tool_call("generate_response", {"result": f"\\boxed{{{ans}}}"}),
            ]
            f.write(json.dumps({"task_id": str(i), "replies": replies}) + "\n")
    return path


def run_cli(args: list[str], tmp_path: Path, monkeypatch, capsys) -> tuple[int, str, str, Path]:
    monkeypatch.chdir(REPO)
    monkeypatch.setenv("ASTUNER_CACHE", str(tmp_path / "cache"))
    exp = tmp_path / "exp"
    code = main([*args[:2], "--backbone=debug", "--exp-dir", str(exp), *args[2:]])
    out = capsys.readouterr()
    return code, out.out, out.err, exp


def summary_of(exp: Path) -> dict:
    (run,) = list(exp.iterdir())
    return json.loads((run / "summary.json").read_text())


def rollouts_of(exp: Path) -> list[dict]:
    (run,) = list(exp.iterdir())
    return [json.loads(line) for line in (run / "rollouts" / "debug.jsonl").read_text().splitlines()]


def test_offline_quick_start(tmp_path, monkeypatch, capsys):
    code, out, _, exp = run_cli(["--conf", "tutorial/example_math_agent/math_agent_offline.yaml"], tmp_path, monkeypatch, capsys)
    assert code == 0
    s = summary_of(exp)
    assert s["rollouts"] == 16 and s["failed_rollouts"] == 0
    assert s["success_rate"] == pytest.approx(0.875)
    assert s["bad_case/empty_tool_stdout"] == 2 and s["bad_case/answer_before_tool_response"] == 2
    assert s["bad_case/malformed_tool_call"] == 0
    assert "success rate 0.875" in out
    (run,) = list(exp.iterdir())
    assert (run / "yaml_backup.yaml").exists()
    for r in rollouts_of(exp):
        assert len(r["samples"]) == 1 and r["timeline_breaks"] == 0
        sample = r["samples"][0]
        assert len(sample["token_ids"]) == len(sample["loss_mask"]) == len(sample["logprobs"]) == len(sample["tokens"])
        assert "<tool_response>" in "".join(t for t, m in zip(sample["tokens"], sample["loss_mask"]) if m == 0)


def test_math_agent_yaml_on_gsm8k_with_scripted_correct_replies(tmp_path, monkeypatch, capsys, gsm8k_dir):
    script = gsm8k_script(gsm8k_dir, tmp_path / "script.jsonl")
    code, out, _, exp = run_cli(
        [
            "--conf", "tutorial/example_math_agent/math_agent.yaml",
            f"astune.task_reader.huggingface_dat_repo.dataset_path={gsm8k_dir}",
            "astune.model.path=astuner://tiny",
            "astune.rollout.engine.type=scripted",
            f"astune.rollout.engine.scripted.path={script}",
            "astune.rollout.num_repeat=2",
            "astune.debug.debug_first_n_tasks=3",
        ],
        tmp_path, monkeypatch, capsys,
    )
    assert code == 0, out
    s = summary_of(exp)
    assert s["rollouts"] == 6 and s["success_rate"] == 1.0 and s["reward_mean"] == 1.0
    assert all(v == 0 for k, v in s.items() if k.startswith("bad_case/"))


def test_math_agent_yaml_with_tiny_model_through_transformers(tmp_path, monkeypatch, capsys, gsm8k_dir):
    code, out, err, exp = run_cli(
        [
            "--conf", "tutorial/example_math_agent/math_agent.yaml",
            f"astune.task_reader.huggingface_dat_repo.dataset_path={gsm8k_dir}",
            "astune.model.path=astuner://tiny",
            "astune.rollout.num_repeat=2",
            "astune.debug.debug_first_n_tasks=1",
            "astune.rollout.max_response_length_in_one_turn=48",
        ],
        tmp_path, monkeypatch, capsys,
    )
    assert code == 0, err
    s = summary_of(exp)
    assert s["rollouts"] == 2 and s["failed_rollouts"] == 0
    rows = rollouts_of(exp)
    for r in rows:
        assert r["num_calls"] >= 1
        for sample in r["samples"]:
            assert 0 < sum(sample["loss_mask"]) and all(lp <= 0 for lp in sample["logprobs"])
    # each rollout of a group samples with its own seed, so a GRPO group is not n copies of one rollout
    assert rows[0]["samples"][0]["token_ids"] != rows[1]["samples"][0]["token_ids"]


class _JudgeLLM(BaseHTTPRequestHandler):
    verdict = "<NotCorrect>"
    seen: list[dict] = []

    def do_POST(self):  # noqa: N802 (http.server naming)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).seen.append(body)
        reply = {
            "id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": self.verdict}}],
        }
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def test_seed_yaml_workflow_and_llm_judge_run_verbatim(tmp_path, monkeypatch, capsys, gsm8k_dir):
    """The seed's YAML as written; only machine paths and the judge endpoint are overridden."""
    conf = tmp_path / "seed_math_agent.yaml"
    conf.write_text(SEED_YAML)
    script = gsm8k_script(gsm8k_dir, tmp_path / "wrong.jsonl", wrong=True)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _JudgeLLM)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("DASHSCOPE_API_KEY", "test-key")
    try:
        code, out, err, exp = run_cli(
            [
                "--conf", str(conf),
                f"astune.task_reader.huggingface_dat_repo.dataset_path={gsm8k_dir}",
                "astune.model.path=astuner://tiny",
                "astune.rollout.engine.type=scripted",
                f"astune.rollout.engine.scripted.path={script}",
                f"astune.task_judge.alien_llm_base_url=http://127.0.0.1:{server.server_port}/v1",
                "astune.rollout.num_repeat=2",
                "astune.debug.debug_first_n_tasks=2",
            ],
            tmp_path, monkeypatch, capsys,
        )
    finally:
        server.shutdown()
    assert code == 0, err
    s = summary_of(exp)
    assert s["rollouts"] == 4 and s["failed_rollouts"] == 0 and s["success_rate"] == 0.0
    assert len(_JudgeLLM.seen) == 4  # the rule failed, so the LLM was asked once per rollout
    asked = json.dumps(_JudgeLLM.seen[0]["messages"])
    final_answers = {r["final_answer"] for r in rollouts_of(exp)}
    assert any(json.dumps(a)[1:-1] in asked for a in final_answers)


NEW_STYLE = '''
from agentscope.agent import ReActAgent
from agentscope.formatter import DashScopeChatFormatter
from agentscope.memory import InMemoryMemory
from agentscope.message import Msg
from agentscope.tool import Toolkit

from astuner import Workflow, WorkflowOutput, WorkflowTask
from astuner.tool import execute_python_code


class NewStyle(Workflow):
    async def execute(self, workflow_task: WorkflowTask, model_tuner) -> WorkflowOutput:
        toolkit = Toolkit()
        toolkit.register_tool_function(execute_python_code)
        agent = ReActAgent(name="a", sys_prompt="Solve it.", model=model_tuner,
                           formatter=DashScopeChatFormatter(), toolkit=toolkit, memory=InMemoryMemory())
        agent.set_console_output_enabled(False)
        reply = await agent.reply(Msg("user", workflow_task.task.main_query, "user"))
        return WorkflowOutput(metadata={"final_answer": reply.get_text_content()})


class Broken(Workflow):
    async def execute(self, workflow_task, model_tuner):
        raise RuntimeError("bug in user workflow")
'''


def _offline_args(tmp_path: Path, workflow: str, replies: list[str]) -> list[str]:
    (tmp_path / "wf.py").write_text(NEW_STYLE)
    script = tmp_path / "replies.jsonl"
    script.write_text(json.dumps({"default": True, "replies": replies}) + "\n")
    return [
        "--conf", "tutorial/example_math_agent/math_agent_offline.yaml",
        f"astuner.rollout.agentscope_workflow={tmp_path / 'wf.py'}->{workflow}",
        f"astuner.rollout.engine.scripted.path={script}",
        "astuner.debug.debug_first_n_tasks=2",
    ]


def test_new_style_workflow_and_malformed_tool_call_do_not_crash(tmp_path, monkeypatch, capsys):
    replies = [
        "I will run code.\n<tool_call>\n{\"name\": \"execute_python_code\", \"arguments\": {\"code\": \"print(1)\"\n</tool_call>",
        "<tool_call>{this is not json at all</tool_call> and the answer is \\boxed{7}",
    ]
    code, out, err, exp = run_cli(_offline_args(tmp_path, "NewStyle", replies), tmp_path, monkeypatch, capsys)
    assert code == 0, err
    rows = rollouts_of(exp)
    assert rows and all(r["error"] is None for r in rows)
    assert all(r["bad_cases"]["malformed_tool_call"] for r in rows)
    assert summary_of(exp)["bad_case/malformed_tool_call"] == len(rows)


def test_failing_workflow_is_counted_and_exit_code_is_1(tmp_path, monkeypatch, capsys):
    code, out, err, exp = run_cli(_offline_args(tmp_path, "Broken", ["x"]), tmp_path, monkeypatch, capsys)
    assert code == 1
    s = summary_of(exp)
    assert s["failed_rollouts"] == s["rollouts"] == 4
    assert "bug in user workflow" in err
    assert all("bug in user workflow" in r["error"] for r in rollouts_of(exp))
