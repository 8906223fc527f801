"""The data that flows between astuner's parts: tasks, workflow inputs/outputs, calls and samples.

Vocabulary (see docs/architecture.md): a *task* is one problem; a *rollout* is one run of the
workflow on one task; the ``num_repeat`` rollouts of a task form a *group*; a *call* is one LLM
request inside a rollout; calls whose token sequences are exact prefixes of later ones merge into
one *sample*, which is what every backbone trains on.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Task(BaseModel):
    """One problem, as a task reader produces it (schema of upstream §4.1)."""

    task_id: str = ""
    main_query: str = ""
    init_messages: list[dict] = Field(default_factory=list)
    env_type: str = "no_env"
    metadata: dict = Field(default_factory=dict)

    def first_messages(self) -> list[dict]:
        """The conversation the workflow starts from: ``init_messages``, or one user message."""
        if self.init_messages:
            return [dict(m) for m in self.init_messages]
        return [{"role": "user", "content": self.main_query}]


class WorkflowTask(BaseModel):
    """What a workflow receives for one rollout: the task plus the rollout's identity."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    task: Task
    repeat_index: int = 0
    task_env_uuid: str = Field(default_factory=lambda: uuid.uuid4().hex)
    gym_env: Any = None
    """An environment handle for env_service tasks; None for plain datasets."""
    auxiliary_models: dict[str, Any] = Field(default_factory=dict)
    """Models this rollout may call that are never trained (``rollout.auxiliary_models``), by name."""

    @property
    def task_id(self) -> str:
        return self.task.task_id

    @property
    def env_type(self) -> str:
        return self.task.env_type

    @property
    def rollout_id(self) -> str:
        """``T<task_id>#R<repeat index>``: the rollout's id in results, samples and logs (upstream's format)."""
        return f"T{self.task.task_id}#R{self.repeat_index}"

    @property
    def task_tag(self) -> str:
        """Upstream's name for ``rollout_id``, kept for workflows written against upstream."""
        return self.rollout_id

    @property
    def init_messages(self) -> list[dict]:
        return self.task.first_messages()


class WorkflowOutput(BaseModel):
    """What a new-style workflow returns. A non-None ``reward`` bypasses the judge."""

    reward: float | None = None
    is_success: bool | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


@dataclass
class CallRecord:
    """One LLM call of a rollout, exactly as the engine saw and produced it.

    ``prompt_ids`` is what was sent; ``completion_ids`` and ``logprobs`` are the engine's own
    output (never re-tokenized). ``timeline`` numbers the run of calls whose prompts were built
    by extending the previous call's tokens; a new timeline starts when the conversation did not
    only grow (or the template is not prefix-preserving).
    """

    prompt_ids: list[int]
    completion_ids: list[int]
    logprobs: list[float]
    finish_reason: str
    timeline: int = 0
    response_text: str = ""
    reply_text: str = ""
    """The reply's text without its tool-call blocks: what the agent stores as content."""
    messages: list[dict] = field(default_factory=list)
    tools: list[dict] | None = None
    parsed_tool_calls: list[dict] = field(default_factory=list)
    malformed_tool_call: bool = False
    repaired_tool_call: bool = False
    """The parser accepted a tool call of this completion only after repairing it."""
    tool_call_problems: list[str] = field(default_factory=list)
    """Why each malformed block did not parse (``malformed_tool_call`` is true when any); each was
    answered with a tool message the model can read (``astuner/tool_call_answers.py``)."""
    context_overflow: bool = False

    def __post_init__(self) -> None:
        if len(self.completion_ids) != len(self.logprobs):
            raise ValueError(
                f"call record: {len(self.completion_ids)} completion ids but "
                f"{len(self.logprobs)} logprobs"
            )


@dataclass
class Sample:
    """One training sequence: the contract every backbone trains on (docs/architecture.md, contract 3).

    ``loss_mask`` is 1 exactly on tokens the policy generated (including a generated
    end-of-turn token); ``logprobs`` are the sampling distribution's log-probabilities on those
    positions and 0 elsewhere. ``group_id`` names the GRPO group (the task), ``rollout_id`` the
    rollout it came from, so a rollout split into several samples can be weighted once.
    """

    token_ids: list[int]
    loss_mask: list[int]
    logprobs: list[float]
    reward: float
    group_id: str
    rollout_id: str
    prompt_length: int = 0
    truncated: bool = False
    advantage: float | None = None

    def __post_init__(self) -> None:
        check_sample_arrays(self.token_ids, self.loss_mask, self.logprobs)

    def to_dict(self) -> dict:
        return {
            "token_ids": self.token_ids,
            "loss_mask": self.loss_mask,
            "logprobs": self.logprobs,
            "reward": self.reward,
            "group_id": self.group_id,
            "rollout_id": self.rollout_id,
            "prompt_length": self.prompt_length,
            "truncated": self.truncated,
            "advantage": self.advantage,
        }


def check_sample_arrays(token_ids: list[int], loss_mask: list[int], logprobs: list[float]) -> None:
    """Raise ValueError unless the three arrays align and masked positions carry logprob 0."""
    if not (len(token_ids) == len(loss_mask) == len(logprobs)):
        raise ValueError(
            f"sample arrays differ in length: token_ids={len(token_ids)} "
            f"loss_mask={len(loss_mask)} logprobs={len(logprobs)}"
        )
    for i, (m, lp) in enumerate(zip(loss_mask, logprobs)):
        if m not in (0, 1):
            raise ValueError(f"loss_mask[{i}] = {m!r}; must be 0 or 1")
        if m == 0 and lp != 0.0:
            raise ValueError(f"logprobs[{i}] = {lp} on a masked position; must be 0")
