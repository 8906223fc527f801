"""The Math Agent workflow of the tutorial: a ReAct agent with a Python tool solves one problem.

Seed style: astuner passes its model tuner (``ModelTuner``) as ``astune_proxy``; the agent uses it
like any AgentScope model; the workflow hands the final answer to the judge with
``astune_proxy.update_judge_input_dictionary(final_answer=...)``.
"""

from __future__ import annotations

from typing import Any

from agentscope.agent import ReActAgent
from agentscope.formatter import DashScopeChatFormatter
from agentscope.memory import InMemoryMemory
from agentscope.message import Msg
from agentscope.tool import Toolkit
from pydantic import BaseModel, Field

from astuner import AgentScopeLearnProtocol
from astuner.tool import execute_python_code

SYSTEM_PROMPT = (
    "You are an agent that solves math word problems. "
    "You can write Python code and run it with the execute_python_code tool to calculate or check "
    "intermediate results; print the values you need, then read them from the tool's output. "
    "Give your final answer inside \\boxed{}."
)


class FinalResult(BaseModel):
    result: str = Field(description="Your final answer to the problem, written inside \\boxed{}.")


def extract_final_answer(result: Any) -> str:
    """The structured answer if the agent gave one, else the reply's text."""
    try:
        if result.metadata and "result" in result.metadata:
            return str(result.metadata["result"])
        if isinstance(result.content, dict) and "result" in result.content:
            return str(result.content["result"])
        return result.get_text_content() or str(result.content)
    except AttributeError:
        return str(result)


class ExampleMathLearn(AgentScopeLearnProtocol):
    """One GSM8K-style problem → ReAct with execute_python_code → final answer for the judge."""

    async def agentscope_execute(self, init_messages: list[dict], astune_proxy: Any, config: Any) -> Any:
        self.toolkit = Toolkit()
        self.toolkit.register_tool_function(execute_python_code)
        self.agent = ReActAgent(
            name="math_react_agent",
            sys_prompt=SYSTEM_PROMPT,
            model=astune_proxy,
            formatter=DashScopeChatFormatter(),
            toolkit=self.toolkit,
            memory=InMemoryMemory(),
            max_iters=5,
        )
        self.agent.set_console_output_enabled(False)
        msg = Msg("user", init_messages[0]["content"], role="user")
        result = await self.agent.reply(msg, structured_model=FinalResult)
        final_answer = extract_final_answer(result)
        astune_proxy.update_judge_input_dictionary(final_answer=final_answer)
        return astune_proxy
