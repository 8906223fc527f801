"""The Math Agent as agentscope.tuner functions: a workflow function and a judge function.

This is the shape agentscope's own tuner examples use (agentscope 1.0.12 and later): instead of a
workflow class, two plain ``async`` functions with fixed parameter names.

1. **Workflow function** ``run_math_agent(task, model, auxiliary_models) -> WorkflowOutput``.
   ``task`` is one dataset row as a dict (here ``{"question": ..., "answer": ...}``; astuner adds
   ``task_id`` and ``main_query``). ``model`` is the trainable model: build the agent with it and
   nothing else changes in the agent code. Return the agent's reply as ``response``; leave
   ``reward`` as None so the judge scores it.
2. **Judge function** ``judge_math_answer(task, response, auxiliary_models) -> JudgeOutput``.
   It gets the same ``task`` and the workflow's ``response`` and returns a reward; ``metrics`` are
   optional numbers kept with the rollout (``is_success`` here decides success explicitly).
3. **Task dataset**: any source astuner reads (a Hugging Face dataset such as GSM8K, JSONL files).

``auxiliary_models`` holds models that are called but never trained (an LLM judge, other agents),
by name, from ``astuner.rollout.auxiliary_models`` in the YAML; it is empty here.

Run it offline (no model, no network; scripted replies and a tiny tokenizer), from the repository root::

    astuner --conf tutorial/example_agentscope_tuner/math_agent_offline.yaml --backbone=debug

Expected: 16 rollouts of 8 tasks, success rate 0.875 (one scripted problem is answered wrongly in
both of its rollouts). astuner imports this module after letting ``agentscope.tuner`` load without
dspy (``astuner/tuner_compat.py``); imported on its own, outside astuner, it needs
``pip install "agentscope[tuner]"``. On GSM8K with a real model, name the two functions in a copy of
``tutorial/example_math_agent/math_agent.yaml`` (``rollout.agentscope_workflow`` and
``task_judge.judge_protocol``) and train with ``--backbone=local`` or ``--backbone=trinity``.

The Python tool is astuner's sandboxed drop-in for ``agentscope.tool.execute_python_code``; the
judge compares numbers with astuner's ``answers_match`` (``18.0``, ``$18`` and ``18`` agree).
"""

from __future__ import annotations

from typing import Any

from agentscope.agent import ReActAgent
from agentscope.formatter import DashScopeChatFormatter
from agentscope.memory import InMemoryMemory
from agentscope.message import Msg
from agentscope.model import ChatModelBase
from agentscope.tool import Toolkit
from agentscope.tuner import JudgeOutput, WorkflowOutput
from pydantic import BaseModel, Field

from astuner.task_judge.math_answer_as_judge import answers_match
from astuner.task_reader import gsm8k_reference
from astuner.tool import execute_python_code

SYSTEM_PROMPT = (
    "You are an agent that solves math word problems. Run Python with the execute_python_code tool "
    "to calculate; print the values you need and read them from the tool's output. "
    "Give your final answer inside \\boxed{}."
)


class FinalResult(BaseModel):
    """The structured final answer the agent must give (its generate_response tool)."""

    result: str = Field(description="Your final answer to the problem, written inside \\boxed{}.")


async def run_math_agent(
    task: dict,
    model: ChatModelBase,
    auxiliary_models: dict[str, ChatModelBase],
) -> WorkflowOutput:
    """Solve one problem with a ReAct agent that may run Python; return its final reply."""
    toolkit = Toolkit()
    toolkit.register_tool_function(execute_python_code)
    agent = ReActAgent(
        name="math_react_agent",
        sys_prompt=SYSTEM_PROMPT,
        model=model,
        formatter=DashScopeChatFormatter(),
        toolkit=toolkit,
        memory=InMemoryMemory(),
        max_iters=5,
    )
    agent.set_console_output_enabled(False)
    reply = await agent.reply(Msg("user", task["question"], role="user"), structured_model=FinalResult)
    return WorkflowOutput(response=reply)


async def judge_math_answer(
    task: dict,
    response: Msg,
    auxiliary_models: dict[str, ChatModelBase],
) -> JudgeOutput:
    """1.0 when the final answer states the reference (the number after GSM8K's ``####``), else 0.0."""
    correct = answers_match(final_answer(response), gsm8k_reference(task["answer"]))
    return JudgeOutput(reward=1.0 if correct else 0.0, metrics={"is_success": float(correct)})


def final_answer(response: Any) -> str:
    """The structured ``result`` when the agent gave one, else the reply's text."""
    metadata = getattr(response, "metadata", None) or {}
    if "result" in metadata:
        return str(metadata["result"])
    text_of = getattr(response, "get_text_content", None)
    return (text_of() or "") if callable(text_of) else str(response)
