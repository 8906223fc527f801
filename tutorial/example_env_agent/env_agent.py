"""The Env Agent workflow: a ReAct agent that acts in an external environment over HTTP.

New style (``Workflow.execute(workflow_task, model_tuner)``). The environment instance was created
by astuner before this runs: its first observation is ``workflow_task.task.init_messages`` and the
handle is ``workflow_task.gym_env``. The agent acts through one tool, ``submit_answer``, which
sends its text to the environment with ``gym_env.astep`` and shows the agent the observation.
Nothing here scores the rollout: the judge (``EnvServiceJudge``) asks the environment.

A service failure inside the tool reaches AgentScope, which shows it to the model as tool text;
astuner still fails the rollout when it ends (the handle remembers the failure), so an outage is
never scored as a bad answer.
"""

from __future__ import annotations

from typing import Any

from agentscope.agent import ReActAgent
from agentscope.formatter import DashScopeChatFormatter
from agentscope.memory import InMemoryMemory
from agentscope.message import Msg, TextBlock
from agentscope.tool import Toolkit, ToolResponse

from astuner import Workflow, WorkflowOutput, WorkflowTask

SYSTEM_PROMPT = (
    "You are taking a quiz in an external environment. Submit the answer to the current question "
    "with the submit_answer tool; the tool's response says whether you were right and asks the next "
    "question. When the environment says the quiz is over, reply with a short summary and no tool call."
)
EPISODE_OVER = "[The episode is over.]"


def submit_answer_tool(gym_env: Any):
    """The agent's only tool, bound to this rollout's environment instance."""

    async def submit_answer(answer: str) -> ToolResponse:
        """Submit your answer to the current question of the environment.

        Args:
            answer (str): Your answer, a single number.
        """
        observation, _reward, terminated, truncated, _info = await gym_env.astep(answer)
        text = f"{observation}\n{EPISODE_OVER}" if terminated or truncated else observation
        return ToolResponse(content=[TextBlock(type="text", text=text)])

    return submit_answer


def first_messages(init_messages: list[dict]) -> list[Msg]:
    """The environment's first observation as AgentScope messages (unknown roles become user)."""
    messages = []
    for message in init_messages:
        role = message.get("role") if message.get("role") in ("user", "assistant", "system") else "user"
        messages.append(Msg(name=role, content=str(message.get("content", "")), role=role))
    return messages


class EnvQuizWorkflow(Workflow):
    """One environment episode: ReAct with ``submit_answer`` until the environment terminates."""

    max_iters: int = 8

    async def execute(self, workflow_task: WorkflowTask, model_tuner: Any) -> WorkflowOutput:
        gym_env = workflow_task.gym_env
        if gym_env is None:
            raise RuntimeError("EnvQuizWorkflow needs an environment: set astuner.task_reader.type to env_service")
        toolkit = Toolkit()
        toolkit.register_tool_function(submit_answer_tool(gym_env))
        agent = ReActAgent(
            name="env_agent",
            sys_prompt=SYSTEM_PROMPT,
            model=model_tuner,
            formatter=DashScopeChatFormatter(),
            toolkit=toolkit,
            memory=InMemoryMemory(),
            max_iters=self.max_iters,
        )
        agent.set_console_output_enabled(False)
        reply = await agent.reply(first_messages(workflow_task.task.init_messages))
        return WorkflowOutput(
            metadata={
                "final_answer": reply.get_text_content(), "env_steps": gym_env.steps,
                "terminated": gym_env.terminated, "truncated": gym_env.truncated,
            }
        )
