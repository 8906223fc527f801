"""The judge interface: one ``compute_reward`` for both the seed style and the new style.

Why both: the seed tutorial's workflows fill a *judge input dictionary* through
``astune_proxy.update_judge_input_dictionary(final_answer=...)`` and the judge is called as
``compute_reward(judge_input_dictionary)``; later workflows return a ``WorkflowOutput`` and the
judge is called as ``compute_reward(workflow_task, workflow_output)``. Both are normalised into one
``JudgeInput`` so a judge is written once, against ``judge(judge_input)``.

Not guaranteed: ``BaseJudge`` does not decide whether the judge runs at all (a workflow-supplied
reward bypasses it; that is the rollout runner's rule), and it does not catch a subclass's errors.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from astuner.config.schema import AstunerConfig, Config, TaskJudgeConfig

_RESERVED = ("workflow_task", "task_core_arg", "workflow_output")


class JudgeInputError(KeyError):
    """A key the judge needs is missing from its input (a workflow bug, not a model failure)."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(key)
        self.key = key
        self.message = message

    def __str__(self) -> str:
        return self.message


class JudgeUnavailableError(RuntimeError):
    """An external resource the judge relies on (an LLM endpoint, its API key) cannot be used."""


class JudgeInput(dict):
    """The judge input dictionary: ``workflow_task`` (alias ``task_core_arg``), ``env``,
    ``grouped_steps``, ``final_answer`` and whatever else the workflow set.

    Indexing a missing key raises ``JudgeInputError`` saying how a workflow provides it;
    ``.get`` behaves as for any dict.
    """

    def __missing__(self, key: str) -> Any:
        if key == "final_answer":
            raise JudgeInputError(
                key,
                "judge input has no 'final_answer': the workflow must call "
                "update_judge_input_dictionary(final_answer=...) (seed style) or return "
                "WorkflowOutput(metadata={'final_answer': ...}) (new style)",
            )
        raise JudgeInputError(
            key,
            f"judge input has no {key!r} (keys present: {', '.join(sorted(map(str, self))) or 'none'}); "
            f"set it with update_judge_input_dictionary({key}=...) or WorkflowOutput.metadata",
        )

    @property
    def workflow_task(self) -> Any:
        return self["workflow_task"]

    @property
    def final_answer(self) -> Any:
        return self["final_answer"]


def build_judge_input(*args: Any, **kwargs: Any) -> JudgeInput:
    """Normalise ``(judge_input_dictionary)`` or ``(workflow_task, workflow_output)`` (positional or
    by those keyword names) into a ``JudgeInput``."""
    if kwargs:
        seed_style = "judge_input_dictionary" in kwargs
        names = ("judge_input_dictionary",) if seed_style else ("workflow_task", "workflow_output")
        unknown = set(kwargs) - set(names)
        if unknown:
            raise TypeError(f"compute_reward got unexpected keyword arguments: {', '.join(sorted(unknown))}")
        args = args + tuple(kwargs[n] for n in names if n in kwargs)
    if len(args) == 1 and isinstance(args[0], Mapping):
        return _from_dictionary(args[0])
    if len(args) == 2:
        return _from_workflow_output(args[0], args[1])
    raise TypeError(
        "compute_reward takes (judge_input_dictionary: dict) or (workflow_task, workflow_output); "
        f"got {len(args)} argument(s) of type {', '.join(type(a).__name__ for a in args) or 'none'}"
    )


def _from_dictionary(source: Mapping) -> JudgeInput:
    data = JudgeInput(source)
    if "workflow_task" in data or "task_core_arg" in data:
        task = data["workflow_task"] if "workflow_task" in data else data["task_core_arg"]
        data["workflow_task"] = task
        data["task_core_arg"] = task
        data.setdefault("env", getattr(task, "gym_env", None))
    data.setdefault("env", None)
    data.setdefault("grouped_steps", [])
    return data


def _from_workflow_output(task: Any, output: Any) -> JudgeInput:
    """``output`` is a ``WorkflowOutput``, anything with a ``metadata`` mapping, a plain dict of
    its fields, or None."""
    if isinstance(output, Mapping):
        metadata = output.get("metadata") or {}
    else:
        metadata = getattr(output, "metadata", None) or {}
    if not isinstance(metadata, Mapping):
        raise TypeError(f"workflow_output.metadata must be a dict, got {type(metadata).__name__}")
    data = JudgeInput(env=getattr(task, "gym_env", None), grouped_steps=[])
    data.update({k: v for k, v in metadata.items() if k not in _RESERVED})
    data["workflow_task"] = task
    data["task_core_arg"] = task
    data["workflow_output"] = output
    return data


def task_judge_settings(config: Config | AstunerConfig | Mapping[str, Any] | None) -> TaskJudgeConfig:
    """The ``astuner.task_judge`` block of the config a judge was built with.

    astuner builds every judge with the run's ``Config``; None gives the schema's defaults. Judges
    built by user code may also have been given an ``AstunerConfig`` or a config file's data as a
    mapping (under an ``astuner:`` or seed-era ``astune:`` root, or without one): the mapping is
    validated here, once, so a wrong key is an error rather than a silent default.
    """
    from astuner.config.schema import AstunerConfig, Config, TaskJudgeConfig

    if config is None:
        return TaskJudgeConfig()
    if isinstance(config, Config):
        return config.astuner.task_judge
    if isinstance(config, AstunerConfig):
        return config.task_judge
    if isinstance(config, Mapping):
        root = next((config[key] for key in ("astuner", "astune") if key in config), config)
        return AstunerConfig.model_validate(dict(root or {})).task_judge
    raise TypeError(f"a judge's config must be astuner's Config (or None), got {type(config).__name__}")


class BaseJudge:
    """Turns what a rollout produced into ``(raw_reward, is_success)``.

    Subclasses implement ``judge(judge_input)``; callers use ``compute_reward`` with either call
    style.
    """

    def __init__(self, config: Config | None = None) -> None:
        """``config`` is the run's whole config, as astuner passes it (None in tests and scripts).

        It stays the one untouched constructor argument, kept as ``self.config``, because seed-era
        judges subclass this class, call ``super().__init__(config)`` and read ``self.config``
        themselves; astuner's own judges read their settings through ``task_judge_settings``.
        """
        self.config = config

    def compute_reward(self, *args: Any, **kwargs: Any) -> tuple[float, bool]:
        """``(raw_reward, is_success)`` for ``(judge_input_dictionary)`` or
        ``(workflow_task, workflow_output)``."""
        raw_reward, is_success = self.judge(build_judge_input(*args, **kwargs))
        return float(raw_reward), bool(is_success)

    def judge(self, judge_input: JudgeInput) -> tuple[float, bool]:
        """Score one rollout. Subclasses must implement this."""
        raise NotImplementedError(f"{type(self).__name__} must implement judge(judge_input)")
