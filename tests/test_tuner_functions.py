"""agentscope.tuner-style functions as workflows and judges: resolution, checks, the output mapping,
and the ``rollout.auxiliary_models`` config. In-process, no model: the functions get a stand-in model.
"""

from __future__ import annotations

import asyncio
import sys
import textwrap
from pathlib import Path

import pytest

from astuner.auxiliary_models import NO_KEY, build_auxiliary_models
from astuner.components import build_judge, judge_class, workflow_class
from astuner.config import ConfigError, load_config
from astuner.resolve import ResolveError
from astuner.schema import Task, WorkflowOutput, WorkflowTask
from astuner.tuner_functions import FunctionJudge, FunctionWorkflow, TunerFunctionError, is_success, response_text, task_dict

FUNCTIONS = '''
from agentscope.message import Msg
from agentscope.tuner import JudgeOutput, WorkflowOutput

SEEN = []


async def echo(task, model, auxiliary_models):
    SEEN.append({"task": task, "model": model, "aux": auxiliary_models})
    return WorkflowOutput(response=Msg("assistant", "the answer is " + task["answer"], "assistant"),
                          metrics={"steps": 2.0})


async def self_scored(task, model):
    return WorkflowOutput(reward=float(task["reward"]), response="done", metrics=task.get("metrics"))


async def with_logger(task, model, logger):
    SEEN.append({"logger": logger.name})
    return WorkflowOutput(response="x")


async def grade(task, response, auxiliary_models):
    SEEN.append({"response": response, "aux": auxiliary_models})
    text = response.get_text_content() if hasattr(response, "get_text_content") else str(response)
    return JudgeOutput(reward=1.0 if task["answer"] in text else 0.25, metrics={"steps": 9.0, "graded": 1.0})


async def partial(task, response):
    return JudgeOutput(reward=0.5, metrics={"is_success": 1.0})


async def wrong_type(task, model):
    return {"reward": 1.0}


async def wrong_judge_type(task, response):
    return 1.0


def sync_workflow(task, model):
    return None


async def extra_param(task, model, temperature):
    return None


async def star_kwargs(task, model, **kwargs):
    return None


async def judge_without_response(task, auxiliary_models):
    return None


class NotAWorkflow:
    pass
'''


@pytest.fixture()
def functions(tmp_path: Path) -> Path:
    path = tmp_path / "functions.py"
    path.write_text(textwrap.dedent(FUNCTIONS))
    return path


def make_task(**metadata) -> WorkflowTask:
    return WorkflowTask(task=Task(task_id="t7", main_query="What is 6*7?", metadata=metadata))


def load_config_defaults(folder: Path, body: str = "astuner: {}\n"):
    conf = folder / "conf.yaml"
    conf.write_text(body)
    return load_config(conf)


def run(coro):
    return asyncio.run(coro)


def test_task_dict_is_the_row_plus_missing_identity():
    task = Task(task_id="3", main_query="q", metadata={"question": "q?", "answer": "4", "task_id": "row-id"})
    row = task_dict(task)
    assert row == {"question": "q?", "answer": "4", "task_id": "row-id", "main_query": "q"}
    row["answer"] = "changed"
    assert task.metadata["answer"] == "4"


def test_is_success_rule():
    assert is_success(1.0, None) and is_success(2.0, {}) and not is_success(0.99, {"other": 1.0})
    assert is_success(0.0, {"is_success": 1.0}) and not is_success(1.0, {"is_success": 0.0})


def test_response_text():
    from agentscope.message import Msg

    assert response_text(Msg("assistant", "boxed{3}", "assistant")) == "boxed{3}"
    assert response_text("plain") == "plain" and response_text(None) is None


def test_functions_resolve_to_adapters_and_classes_stay(functions):
    wf = workflow_class(f"{functions}->echo")
    judge = judge_class(f"{functions}->grade")
    assert issubclass(wf, FunctionWorkflow) and wf.spec == f"{functions}->echo"
    assert issubclass(judge, FunctionJudge)
    assert workflow_class("tutorial.example_math_agent.math_agent->ExampleMathLearn").__name__ == "ExampleMathLearn"
    assert judge_class("astune.task_judge.math_answer_as_judge->MathAnswerAsJudge").__name__ == "MathAnswerAsJudge"


@pytest.mark.parametrize(("key", "name", "words"), [
    ("workflow", "sync_workflow", "must be 'async def'"),
    ("workflow", "extra_param", "Contains disallowed parameters: ['temperature']"),
    ("workflow", "star_kwargs", "**kwargs parameter is not allowed"),
    ("workflow", "grade", "Missing essential parameters: ['model']"),
    ("judge", "judge_without_response", "Missing essential parameters: ['response']"),
    ("workflow", "NotAWorkflow", "is not a workflow"),
    ("judge", "SEEN", "is not a judge"),
])
def test_invalid_functions_are_one_line_errors(functions, key, name, words):
    spec = f"{functions}->{name}"
    with pytest.raises(ResolveError) as err:
        (workflow_class if key == "workflow" else judge_class)(spec)
    assert words in str(err.value) and spec in str(err.value) and "\n" not in str(err.value)


def test_workflow_output_maps_to_astuner_output(functions):
    wf = workflow_class(f"{functions}->echo")
    wt = make_task(question="6*7?", answer="42")
    wt.auxiliary_models = {"grader": "stand-in"}
    model = object()
    out = run(wf().execute(wt, model))
    assert isinstance(out, WorkflowOutput) and out.reward is None
    assert out.metadata["final_answer"] == "the answer is 42" and out.metadata["metrics"] == {"steps": 2.0}
    assert out.metadata["response"].get_text_content() == "the answer is 42"
    module = sys.modules[wf.workflow_func.__module__]
    seen = module.SEEN[-1]
    assert seen["model"] is model and seen["aux"] == {"grader": "stand-in"}
    assert seen["task"] == {"question": "6*7?", "answer": "42", "task_id": "t7", "main_query": "What is 6*7?"}


@pytest.mark.parametrize(("reward", "metrics", "success"), [(1.0, None, True), (0.5, None, False), (0.5, {"is_success": 1.0}, True)])
def test_workflow_reward_is_final_with_the_success_rule(functions, reward, metrics, success):
    wf = workflow_class(f"{functions}->self_scored")
    out = run(wf().execute(make_task(reward=reward, metrics=metrics), object()))
    assert (out.reward, out.is_success, out.metadata["final_answer"]) == (reward, success, "done")


def test_only_declared_parameters_are_passed(functions):
    wf = workflow_class(f"{functions}->with_logger")
    run(wf().execute(make_task(), object()))
    assert sys.modules[wf.workflow_func.__module__].SEEN[-1] == {"logger": "astuner.workflow"}


def test_judge_output_maps_to_reward_success_and_merged_metrics(functions, tmp_path):
    judge = build_judge(f"{functions}->grade", load_config_defaults(tmp_path))
    wt = make_task(answer="42")
    wt.auxiliary_models = {"grader": "stand-in"}
    out = WorkflowOutput(metadata={"response": "so 42", "final_answer": "so 42", "metrics": {"steps": 2.0, "calls": 1.0}})
    assert run(judge.compute_reward(wt, out)) == (1.0, True)
    assert out.metadata["metrics"] == {"steps": 9.0, "calls": 1.0, "graded": 1.0}
    seen = sys.modules[judge.judge_func.__module__].SEEN[-1]
    assert seen == {"response": "so 42", "aux": {"grader": "stand-in"}}
    wrong = WorkflowOutput(metadata={"response": "so 41"})
    assert run(judge.compute_reward(wt, wrong)) == (0.25, False)


def test_class_workflow_output_feeds_a_judge_function_its_final_answer(functions):
    judge = judge_class(f"{functions}->grade")(None)
    assert run(judge.compute_reward(make_task(answer="7"), WorkflowOutput(metadata={"final_answer": "\\boxed{7}"}))) == (1.0, True)
    assert sys.modules[judge.judge_func.__module__].SEEN[-1]["response"] == "\\boxed{7}"
    assert run(judge_class(f"{functions}->partial")(None).compute_reward(make_task(), WorkflowOutput())) == (0.5, True)


@pytest.mark.parametrize(("key", "name", "expected"), [("workflow", "wrong_type", "agentscope.tuner.WorkflowOutput"),
                                                        ("judge", "wrong_judge_type", "agentscope.tuner.JudgeOutput")])
def test_wrong_return_types_name_the_expected_class(functions, key, name, expected):
    spec = f"{functions}->{name}"
    with pytest.raises(TunerFunctionError) as err:
        if key == "workflow":
            run(workflow_class(spec)().execute(make_task(), object()))
        else:
            run(judge_class(spec)(None).compute_reward(make_task(), WorkflowOutput()))
    assert str(err.value) == f"{spec} returned {'dict' if key == 'workflow' else 'float'}, expected {expected}"


def test_auxiliary_models_config_defaults_empty_and_builds_openai_models(tmp_path, monkeypatch):
    assert load_config_defaults(tmp_path).astuner.rollout.auxiliary_models == {}
    assert build_auxiliary_models({}) == {}
    cfg = load_config_defaults(tmp_path, "astuner:\n  rollout:\n    auxiliary_models:\n      grader: {base_url: 'http://127.0.0.1:9/v1', model_name: judge-7b, api_key_env: MY_KEY, temperature: 0.0, max_tokens: 64}\n")
    monkeypatch.setenv("MY_KEY", "secret")
    models = build_auxiliary_models(cfg.astuner.rollout.auxiliary_models)
    grader = models["grader"]
    assert type(grader).__name__ == "OpenAIChatModel" and grader.model_name == "judge-7b" and grader.stream is False
    assert grader.generate_kwargs == {"temperature": 0.0, "max_tokens": 64}
    assert str(grader.client.base_url).rstrip("/") == "http://127.0.0.1:9/v1" and grader.client.api_key == "secret"
    monkeypatch.delenv("MY_KEY")
    assert build_auxiliary_models(cfg.astuner.rollout.auxiliary_models)["grader"].client.api_key == NO_KEY


@pytest.mark.parametrize(("entry", "words"), [
    ("{model_path: /models/qwen, max_model_len: 4096}", "model_path, max_model_len: astuner does not serve auxiliary models"),
    ("{base_url: 'http://x/v1'}", "model_name"),
    ("{type: vllm, model_name: m}", "type"),
])
def test_auxiliary_models_reject_what_astuner_cannot_do(tmp_path, entry, words):
    with pytest.raises(ConfigError) as err:
        load_config_defaults(tmp_path, f"astuner:\n  rollout:\n    auxiliary_models:\n      grader: {entry}\n")
    text = str(err.value)
    assert "rollout.auxiliary_models" in text and words in text and "\n" not in text
