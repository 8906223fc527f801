"""The step result: gymnasium's 5-tuple, read from both forms of the wire and convertible to gym's 4-tuple.

``EnvServiceGymEnv.step`` returns a :class:`StepResult`, gymnasium's ``(observation, reward,
terminated, truncated, info)``: *terminated* means the episode reached a terminal state (no future
reward to bootstrap), *truncated* that it was cut off by a limit (steps, time) before one. The old
4-tuple ``(observation, reward, done, info)`` had one flag for both.

On the wire (the ``step`` response's ``data``, ``client.py``):

- ``is_terminated`` (required, as always): the episode is over, for whatever reason. Keeping this
  meaning is what keeps **old clients** working against new services: they only read this flag,
  and it is true whenever the episode ended, truncation included.
- ``is_truncated`` (optional, new): the episode is over because of a limit. A service that sends it
  speaks the new form; astuner's example service does.
- **Old services** are detected by the absence of ``is_truncated``; then gym's own convention is
  read, ``info["TimeLimit.truncated"]`` (what gym's ``TimeLimit`` wrapper set), and without it the
  step is not truncated.

So ``truncated = is_truncated`` (from an old service: the info flag on a step with
``is_terminated``) and ``terminated = is_terminated and not truncated``: an episode that ends by
a limit is truncated, not terminated, also when a service sets both flags.

In Python, ``to_five`` and ``to_four`` convert any step result, telling the forms apart by length
(4 or 5): ``to_four`` gives code written for gym's 4-tuple ``done = terminated or truncated`` with
``info["TimeLimit.truncated"]`` set when the episode was truncated, the inverse of the wire rule.

Not guaranteed: a step that is both terminal and at the limit is reported as truncated only when
the service sets ``is_truncated`` (gymnasium allows both flags; one wire flag cannot say both).
"""

from __future__ import annotations

from typing import Any, NamedTuple

TRUNCATED_INFO_KEY = "TimeLimit.truncated"
"""Where gym's 4-tuple API put "ended by a limit", inside ``info``."""


class StepResult(NamedTuple):
    """gymnasium's step result; unpacks as ``obs, reward, terminated, truncated, info``."""

    observation: Any
    reward: float
    terminated: bool
    truncated: bool
    info: dict

    @property
    def done(self) -> bool:
        """The episode is over (gym's 4-tuple ``done``)."""
        return self.terminated or self.truncated


def flags_from_wire(data: dict, info: dict) -> tuple[bool, bool]:
    """``(terminated, truncated)`` from a ``step`` response's ``data`` and its ``info`` (module docstring)."""
    if "is_truncated" in data:
        truncated = bool(data["is_truncated"])
    else:
        truncated = bool(info.get(TRUNCATED_INFO_KEY, False)) and bool(data.get("is_terminated"))
    return bool(data.get("is_terminated")) and not truncated, truncated


def to_wire(terminated: bool, truncated: bool) -> dict[str, bool]:
    """The two wire flags of a step whose episode is ``terminated`` / ``truncated`` (for services)."""
    return {"is_terminated": bool(terminated or truncated), "is_truncated": bool(truncated)}


def to_five(result: tuple) -> StepResult:
    """A step result of either form as gymnasium's 5-tuple (a 4-tuple's ``info`` flag decides truncation)."""
    if len(result) == 5:
        observation, reward, terminated, truncated, info = result
        return StepResult(observation, reward, bool(terminated), bool(truncated), info)
    if len(result) == 4:
        observation, reward, done, info = result
        truncated = bool(done) and bool((info or {}).get(TRUNCATED_INFO_KEY, False))
        return StepResult(observation, reward, bool(done) and not truncated, truncated, info)
    raise ValueError(f"a step result has 4 items (gym) or 5 (gymnasium), got {len(result)}")


def to_four(result: tuple) -> tuple[Any, float, bool, dict]:
    """A step result of either form as gym's 4-tuple ``(observation, reward, done, info)``.

    ``info`` is a copy with ``"TimeLimit.truncated": True`` added when the episode was truncated.
    """
    step = to_five(result)
    info = dict(step.info or {})
    if step.truncated:
        info[TRUNCATED_INFO_KEY] = True
    return step.observation, step.reward, step.done, info
