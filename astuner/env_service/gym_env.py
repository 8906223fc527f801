"""The env handle a rollout's workflow and judge get as ``workflow_task.gym_env``.

One handle is bound to one instance on an environment service for one rollout attempt. The
workflow acts with ``step(action) -> (observation, reward, terminated, truncated, info)``,
gymnasium's 5-tuple (``step_api.StepResult``; or ``await astep(...)``, which runs the request in a
worker thread so other rollouts keep going); code written for gym's 4-tuple ``(observation,
reward, done, info)`` calls ``legacy_step`` / ``alegacy_step`` instead. How the two flags are read
from services that send ``is_truncated`` and from older ones that do not: ``step_api.py``. The
judge scores with ``evaluate(params=...)``. The rollout runner creates the instance before the workflow
and releases it afterwards (``session.py``); workflows never create or release.

A failed request makes the handle *broken*: every later ``step``/``evaluate`` raises the first
error again, and the rollout fails when it ends even if the workflow swallowed the error (agent
frameworks turn a tool's exception into text for the model; an unreachable service must not be
scored as if the agent had simply done badly).

Not guaranteed: ``step`` does not validate what the agent sends (a bad action is the
environment's to answer, as an observation); ``reward`` from ``step`` is whatever number the
service puts there (0.0 when it gives none), and the judge ignores it; thread-safety for
concurrent ``step`` calls on one handle (a rollout acts sequentially).
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable

from astuner.env_service.client import EnvClient, EnvServiceError
from astuner.env_service.step_api import StepResult, flags_from_wire, to_four

NO_CONTENT_TEXT = "[The environment returned no observation text.]"


class EnvServiceGymEnv:
    """One environment instance (``instance_id``) of task ``task_id`` on the service of ``client``."""

    def __init__(self, client: EnvClient, env_type: str, task_id: str, instance_id: str) -> None:
        self.client = client
        self.env_type = env_type
        self.task_id = task_id
        self.instance_id = instance_id
        self.steps = 0
        self.terminated = False
        self.truncated = False
        self.created = False
        self.released = False
        self.error: EnvServiceError | None = None
        self.info: dict = {}

    def create(self, params: dict | None = None) -> list[dict]:
        """Create the instance; returns its first observation as chat messages (``init_messages``).

        A ``state`` that is one message becomes ``[state]``; a list of messages stays as it is.
        """
        data = self._request("create", lambda: self.client.create_instance(self.env_type, self.task_id, self.instance_id, params))
        self.created = True
        self.info = data.get("info") if isinstance(data.get("info"), dict) else {}
        return self._messages("create", data["state"])

    def step(self, action: str | dict, params: dict | None = None) -> StepResult:
        """Send one action; returns ``(observation text, reward, terminated, truncated, info)``.

        ``action`` is the agent's text, or a message ``{"role", "content"}`` whose content may be
        a list of content blocks (the first text block is sent).
        """
        message = _action_message(action)
        data = self._request("step", lambda: self.client.step(self.instance_id, message, params))
        self.steps += 1
        reward = data.get("reward")
        reward = float(reward) if isinstance(reward, (int, float)) and not isinstance(reward, bool) else 0.0
        info = data.get("info") if isinstance(data.get("info"), dict) else {}
        self.terminated, self.truncated = flags_from_wire(data, info)
        return StepResult(self._observation(data["state"]), reward, self.terminated, self.truncated, info)

    async def astep(self, action: str | dict, params: dict | None = None) -> StepResult:
        """``step`` in a worker thread, for async workflows and tools."""
        return await asyncio.to_thread(self.step, action, params)

    def legacy_step(self, action: str | dict, params: dict | None = None) -> tuple[str, float, bool, dict]:
        """``step`` as gym's 4-tuple ``(observation, reward, done, info)``, for code written against it;
        ``info["TimeLimit.truncated"]`` is True when the episode was cut off by a limit."""
        return to_four(self.step(action, params))

    async def alegacy_step(self, action: str | dict, params: dict | None = None) -> tuple[str, float, bool, dict]:
        """``legacy_step`` in a worker thread."""
        return to_four(await self.astep(action, params))

    def evaluate(self, instance_id: str | None = None, params: dict | None = None) -> float:
        """The service's score of this instance.

        ``instance_id`` exists for upstream's call style ``evaluate(task_env_uuid, params=...)``;
        it must be this handle's instance.
        """
        if instance_id is not None and instance_id != self.instance_id:
            raise ValueError(f"this env handle is instance {self.instance_id}, not {instance_id}")
        return self._request("evaluate", lambda: self.client.evaluate(self.instance_id, params))

    def release(self) -> bool:
        """Free the instance on the service (idempotent here: a second call sends nothing)."""
        if self.released:
            return True
        known = self.client.release_instance(self.instance_id)
        self.released = True
        return known

    def metrics(self) -> dict[str, Any]:
        """What a rollout record keeps about its env instance."""
        return {
            "instance_id": self.instance_id,
            "created": self.created,
            "steps": self.steps,
            "terminated": self.terminated,
            "truncated": self.truncated,
            "released": self.released,
            "error": str(self.error) if self.error else None,
            **{f"http_{k}": v for k, v in self.client.stats.items()},
        }

    def _request(self, operation: str, send: Callable[[], Any]) -> Any:
        if self.released:
            raise EnvServiceError(self.client.base_url, operation, "the instance was already released", instance_id=self.instance_id)
        if self.error is not None:
            raise EnvServiceError(
                self.client.base_url, operation,
                f"not sent: the instance is unusable since its {self.error.operation} failed ({self.error.reason})",
                instance_id=self.instance_id,
            )
        try:
            return send()
        except EnvServiceError as exc:
            self.error = exc
            raise

    def _messages(self, operation: str, state: Any) -> list[dict]:
        messages = [state] if isinstance(state, dict) else state
        if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
            self.error = EnvServiceError(
                self.client.base_url, operation, f"unexpected response: 'state' is {type(state).__name__}, expected a message or a list of messages",
                instance_id=self.instance_id,
            )
            raise self.error
        return [dict(m) for m in messages]

    def _observation(self, state: Any) -> str:
        """The text the agent sees: the state's content (several messages joined by blank lines).

        A state carrying only an ``error`` becomes ``[Error from environment: ...]``, an empty
        one a fixed notice: both are observations for the agent, not failures of the rollout.
        """
        messages = self._messages("step", state)
        texts = []
        for message in messages:
            content = message.get("content")
            if content is None and "error" in message:
                texts.append(f"[Error from environment: {message['error']}]")
            elif content:
                texts.append(content if isinstance(content, str) else _first_text(content) or str(content))
        return "\n\n".join(texts) or NO_CONTENT_TEXT


def _action_message(action: str | dict) -> dict:
    if isinstance(action, str):
        return {"role": "assistant", "content": action}
    if isinstance(action, dict):
        content = action.get("content", "")
        if isinstance(content, list):
            content = _first_text(content)
        return {"role": action.get("role", "assistant"), "content": "" if content is None else str(content)}
    raise TypeError(f"env action must be text or a message dict, got {type(action).__name__}")


def _first_text(blocks: list) -> str:
    for block in blocks:
        if isinstance(block, dict) and block.get("type") == "text":
            return str(block.get("text", ""))
        if isinstance(block, str):
            return block
    return ""
