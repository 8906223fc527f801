"""Seed-era compatibility end to end through the real CLI (debug backbone, scripted replies):

- the spec's YAML (``shared/seed/math_agent.md``, section 3.2) reads GSM8K with no ``dataset_name``,
  in both local layouts: the repository root (configs main and socratic) and upstream's ``.../main``
  folder, which failed with "BuilderConfig 'main' not found" while ``main`` was the default;
- workflows and judges written against the seed-era ``astune`` package run unchanged.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from astuner.cli import main
from tests.conftest import REPO

pytestmark = pytest.mark.integration

SPEC_YAML = """\
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

SEED_ERA_CODE = '''
from agentscope.agent import ReActAgent
from agentscope.formatter import DashScopeChatFormatter
from agentscope.memory import InMemoryMemory
from agentscope.message import Msg
from agentscope.tool import Toolkit
from pydantic import Field

import astune
from astune import ModelTuner, Workflow, WorkflowOutput, WorkflowTask
from astune.context_manager.agentscope_cm.cmt_agentscope import ASTuneProxy as TrackerProxy
from astune.protocol.agentscope_protocol import AgentScopeLearnProtocol
from astune.schema.task import Task
from astune.task_judge.env_service_as_judge import EnvServiceJudge
from astune.task_judge.judge_base import JudgeBase
from astune.task_judge.math_answer_as_judge import MathAnswerAndLlmAsJudge, MathAnswerAsJudge
from astune.tuner import ModelTuner as TunerModelTuner
from astune.workflow import WorkflowOutput as FlowOutput
from astune.workflow_controller.agentscope_flow import ASTuneProxy
from astuner.tool import execute_python_code
from tutorial.example_math_agent.math_agent import SYSTEM_PROMPT, FinalResult, extract_final_answer


async def react(model, query):
    toolkit = Toolkit()
    toolkit.register_tool_function(execute_python_code)
    agent = ReActAgent(name="math_react_agent", sys_prompt=SYSTEM_PROMPT, model=model,
                       formatter=DashScopeChatFormatter(), toolkit=toolkit, memory=InMemoryMemory(), max_iters=5)
    agent.set_console_output_enabled(False)
    return extract_final_answer(await agent.reply(Msg("user", query, role="user"), structured_model=FinalResult))


class SeedStyle(AgentScopeLearnProtocol):
    trainer: str = Field(default="astune-trinity")

    async def agentscope_execute(self, init_messages, astune_proxy: ASTuneProxy, config):
        final_answer = await react(astune_proxy, init_messages[0]["content"])
        proxy_ok = isinstance(astune_proxy, ASTuneProxy) and ASTuneProxy is TrackerProxy
        astune_proxy.update_judge_input_dictionary(final_answer=final_answer, proxy_ok=proxy_ok)
        return astune_proxy


class NewStyle(Workflow):
    async def execute(self, workflow_task: WorkflowTask, model_tuner: ModelTuner) -> WorkflowOutput:
        final_answer = await react(model_tuner, workflow_task.task.main_query)
        proxy_ok = (isinstance(model_tuner, TunerModelTuner) and isinstance(workflow_task.task, Task)
                    and FlowOutput is WorkflowOutput and astune.Workflow is Workflow)
        return FlowOutput(metadata={"final_answer": final_answer, "proxy_ok": proxy_ok})


class SeedJudge(JudgeBase):
    """Upstream's judge shape: compute_reward(judge_input_dictionary) -> (raw_reward, is_success)."""

    def compute_reward(self, judge_input_dictionary):
        assert judge_input_dictionary["proxy_ok"], "the astune names are not astuner's objects"
        assert issubclass(MathAnswerAndLlmAsJudge, MathAnswerAsJudge) and issubclass(EnvServiceJudge, JudgeBase)
        return MathAnswerAsJudge(self.config).compute_reward(judge_input_dictionary)
'''


def run_cli(args: list[str], tmp_path: Path, monkeypatch, capsys) -> tuple[int, str, Path]:
    monkeypatch.chdir(REPO)
    monkeypatch.setenv("ASTUNER_CACHE", str(tmp_path / "cache"))
    exp = tmp_path / "exp"
    code = main([*args[:2], "--backbone=debug", "--exp-dir", str(exp), *args[2:]])
    return code, capsys.readouterr().err, exp


def rollouts(exp: Path) -> list[dict]:
    (run,) = list(exp.iterdir())
    return [json.loads(line) for line in (run / "rollouts" / "debug.jsonl").read_text().splitlines()]


def correct_replies(gsm8k_dir: Path, path: Path, count: int) -> Path:
    """Scripted replies that compute with print and box the reference, for the first ``count`` test rows."""
    from datasets import load_dataset

    rows = load_dataset(str(gsm8k_dir / "main"), split="test").select(range(count))
    with path.open("w") as f:
        for i, row in enumerate(rows):
            ref = row["answer"].split("####")[-1].strip().replace(",", "")
            call = {"name": "execute_python_code", "arguments": {"code": f"print({ref})"}}
            answer = {"name": "generate_response", "arguments": {"result": f"\\boxed{{{ref}}}"}}
            replies = [f"Compute.\n<tool_call>\n{json.dumps(call)}\n</tool_call>",
                       f"So \\boxed{{{ref}}}.\n<tool_call>\n{json.dumps(answer)}\n</tool_call>"]
            f.write(json.dumps({"task_id": str(i), "replies": replies}) + "\n")
    return path


@pytest.mark.parametrize("layout", ["root", "main_folder"])
def test_spec_yaml_reads_gsm8k_without_a_dataset_name(layout, tmp_path, monkeypatch, capsys, gsm8k_dir):
    conf = tmp_path / "math_agent.yaml"
    conf.write_text(SPEC_YAML)
    dataset = gsm8k_dir if layout == "root" else gsm8k_dir / "main"
    monkeypatch.setenv("DASHSCOPE_API_KEY", "unused")  # the rule matches first, so the LLM is never asked
    code, err, exp = run_cli([
        "--conf", str(conf),
        f"astune.task_reader.huggingface_dat_repo.dataset_path={dataset}",
        "astune.task_reader.shuffle=false",
        "astune.model.path=astuner://tiny",
        "astune.rollout.engine.type=scripted",
        f"astune.rollout.engine.scripted.path={correct_replies(gsm8k_dir, tmp_path / 'replies.jsonl', 2)}",
        "astune.task_judge.alien_llm_base_url=http://127.0.0.1:9/v1",
        "astune.rollout.num_repeat=1",
        "astune.debug.debug_first_n_tasks=2",
    ], tmp_path, monkeypatch, capsys)
    assert code == 0, err
    assert "BuilderConfig" not in err
    rows = rollouts(exp)
    assert sorted(r["task_id"] for r in rows) == ["0", "1"]
    assert all(r["error"] is None and r["is_success"] for r in rows)
    note = "has configs main, socratic and no default; using 'main'"
    assert (note in err) == (layout == "root")


@pytest.mark.parametrize("workflow", ["SeedStyle", "NewStyle"])
def test_seed_era_astune_imports_run_unchanged(workflow, tmp_path, monkeypatch, capsys):
    code_file = tmp_path / "seed_era.py"
    code_file.write_text(SEED_ERA_CODE)
    code, err, exp = run_cli([
        "--conf", "tutorial/example_math_agent/math_agent_offline.yaml",
        f"astuner.rollout.agentscope_workflow={code_file}->{workflow}",
        f"astuner.task_judge.judge_protocol={code_file}->SeedJudge",
        "astuner.task_reader.shuffle=false",
        "astuner.debug.debug_first_n_tasks=8",
    ], tmp_path, monkeypatch, capsys)
    assert code == 0, err
    rows = rollouts(exp)
    assert len(rows) == 16 and all(r["error"] is None for r in rows)
    assert {r["task_id"] for r in rows if not r["is_success"]} == {"offline-6"}
