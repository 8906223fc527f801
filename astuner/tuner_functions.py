"""agentscope.tuner-style functions as astuner workflows and judges.

agentscope (1.0.12 and later) describes a tunable agent as two async functions, with
``WorkflowOutput`` and ``JudgeOutput`` from ``agentscope.tuner``::

    async def workflow_func(task: dict, model: ChatModelBase,
                            auxiliary_models: dict[str, ChatModelBase]) -> WorkflowOutput
    async def judge_func(task: dict, response: Any,
                         auxiliary_models: dict[str, ChatModelBase]) -> JudgeOutput

``auxiliary_models`` and ``logger`` are optional parameters; a function gets only those its
signature names (agentscope's ``check_workflow_function`` / ``check_judge_function`` decide what is
accepted). Named as ``module->function`` in ``rollout.agentscope_workflow`` or
``task_judge.judge_protocol``, such a function is adapted here to astuner's contract, so every
backbone runs it through the same rollout code as a class workflow or judge. The mapping:

========================  ============================================================================
``task``                  a new dict per call: the task's ``metadata`` (the dataset row for
                          ``huggingface_dat_repo``, the JSON line for task files), plus ``task_id`` and
                          ``main_query`` when the row has no key of that name
``model``                 the rollout's ``ModelTuner``: the same token-exact, recorded model a class
                          workflow gets; every call through it is trained on
``auxiliary_models``      ``workflow_task.auxiliary_models``: the ``rollout.auxiliary_models`` of the
                          config, built for this rollout, never trained (empty by default)
``logger``                the ``logging`` logger ``astuner.workflow``
WorkflowOutput.reward     astuner's workflow reward: when not None it is the rollout's raw reward, with
                          ``is_success`` by the rule below, and the judge is not called (astuner's rule
                          for every workflow; agentscope's Trinity adapter instead calls ``judge_func``
                          when one is given and ignores this reward)
WorkflowOutput.response   ``metadata["response"]``, handed to a judge function as ``response``; its text
                          (a ``Msg``'s text content, a string as is) is also ``metadata["final_answer"]``,
                          so class judges such as ``MathAnswerAsJudge`` and the rollout record read it
WorkflowOutput.metrics    ``metadata["metrics"]``
JudgeOutput.reward        ``raw_reward`` (bad-case penalties and madness apply after, as for any judge)
JudgeOutput.metrics       merged over the workflow's metrics (the judge wins on a shared name); the
                          rollout record keeps them as ``metrics``
is_success                ``metrics["is_success"] != 0`` when the metrics (the judge's merged over the
                          workflow's) have that key, else ``reward >= 1.0`` (``SUCCESS_REWARD``)
========================  ============================================================================

A judge function paired with a class workflow gets ``response`` = the workflow's
``metadata["response"]``, else its ``final_answer``. Errors are one-line: a sync function, a
signature agentscope would reject, or a return value that is not agentscope's output class.

Not guaranteed: function workflows get no environment handle (``env_service`` tasks need a class
workflow, which reads ``workflow_task.gym_env``); metrics are recorded per rollout, not averaged
into the run's summary.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from astuner.schema import Task, WorkflowOutput, WorkflowTask

if TYPE_CHECKING:
    from astuner.config.schema import Config
    from astuner.model_tuner import ModelTuner

SUCCESS_REWARD = 1.0
SUCCESS_METRIC = "is_success"
LOGGER = logging.getLogger("astuner.workflow")


class TunerFunctionError(TypeError):
    """A function that is not a valid agentscope.tuner workflow or judge function."""


def is_tuner_function(obj: Any) -> bool:
    """Whether a resolved config value is a function (agentscope.tuner style) rather than a class."""
    return callable(obj) and not inspect.isclass(obj)


def function_workflow(func: Callable[..., Any], spec: str) -> type:
    """A workflow class (astuner's ``execute(workflow_task, model_tuner)``) that runs ``func``."""
    _check(func, spec, "workflow")
    return type(
        f"FunctionWorkflow[{spec}]",
        (FunctionWorkflow,),
        {"workflow_func": staticmethod(func), "spec": spec, "__module__": __name__},
    )


def function_judge(func: Callable[..., Any], spec: str) -> type:
    """A judge class (built as ``cls(config)``, async ``compute_reward``) that runs ``func``."""
    _check(func, spec, "judge")
    return type(
        f"FunctionJudge[{spec}]",
        (FunctionJudge,),
        {"judge_func": staticmethod(func), "spec": spec, "__module__": __name__},
    )


def task_dict(task: Task) -> dict[str, Any]:
    """The ``task`` argument: a fresh copy of the task's row, with ``task_id``/``main_query`` added if absent."""
    row = dict(task.metadata)
    row.setdefault("task_id", task.task_id)
    row.setdefault("main_query", task.main_query)
    return row


def is_success(reward: float, metrics: Mapping[str, Any] | None) -> bool:
    """``metrics["is_success"] != 0`` when present, else ``reward >= SUCCESS_REWARD``."""
    if metrics and SUCCESS_METRIC in metrics:
        return bool(metrics[SUCCESS_METRIC])
    return reward >= SUCCESS_REWARD


def response_text(response: Any) -> Any:
    """What a response says, for ``final_answer``: a ``Msg``'s text content, a string as is, else the object."""
    text_of = getattr(response, "get_text_content", None)
    if callable(text_of):
        text = text_of()
        return text if text is not None else str(getattr(response, "content", ""))
    return response


class FunctionWorkflow:
    """Runs an agentscope.tuner workflow function as an astuner workflow (see the module docstring)."""

    workflow_func: Callable[..., Any]
    spec: str = ""

    async def execute(self, workflow_task: WorkflowTask, model_tuner: ModelTuner) -> WorkflowOutput:
        from agentscope.tuner import WorkflowOutput as TunerWorkflowOutput

        arguments = _arguments(
            type(self).workflow_func,
            task=task_dict(workflow_task.task),
            model=model_tuner,
            auxiliary_models=dict(workflow_task.auxiliary_models),
        )
        produced = await type(self).workflow_func(**arguments)
        if not isinstance(produced, TunerWorkflowOutput):
            raise TunerFunctionError(
                f"{self.spec} returned {type(produced).__name__}, expected agentscope.tuner.WorkflowOutput"
            )
        metrics = dict(produced.metrics or {})
        metadata = {"response": produced.response, "final_answer": response_text(produced.response), "metrics": metrics}
        if produced.reward is None:
            return WorkflowOutput(metadata=metadata)
        reward = float(produced.reward)
        return WorkflowOutput(reward=reward, is_success=is_success(reward, metrics), metadata=metadata)


class FunctionJudge:
    """Runs an agentscope.tuner judge function as an astuner judge (see the module docstring).

    ``compute_reward`` is a coroutine: the rollout runner awaits it on the rollout's event loop,
    where the auxiliary models were built.
    """

    judge_func: Callable[..., Any]
    spec: str = ""

    def __init__(self, config: Config | None = None) -> None:
        self.config = config

    async def compute_reward(self, workflow_task: WorkflowTask, workflow_output: WorkflowOutput) -> tuple[float, bool]:
        """``(raw_reward, is_success)``; the judge's metrics are merged into ``workflow_output.metadata["metrics"]``."""
        from agentscope.tuner import JudgeOutput

        metadata = workflow_output.metadata
        response = metadata["response"] if "response" in metadata else metadata.get("final_answer")
        arguments = _arguments(
            type(self).judge_func,
            task=task_dict(workflow_task.task),
            response=response,
            auxiliary_models=dict(workflow_task.auxiliary_models),
        )
        verdict = await type(self).judge_func(**arguments)
        if not isinstance(verdict, JudgeOutput):
            raise TunerFunctionError(
                f"{self.spec} returned {type(verdict).__name__}, expected agentscope.tuner.JudgeOutput"
            )
        judge_metrics = dict(verdict.metrics or {})
        metadata["metrics"] = {**dict(metadata.get("metrics") or {}), **judge_metrics}
        reward = float(verdict.reward)
        return reward, is_success(reward, metadata["metrics"])


def _arguments(func: Callable[..., Any], **available: Any) -> dict[str, Any]:
    """The keyword arguments ``func`` declares, from ``available`` plus ``logger``."""
    names = inspect.signature(func).parameters
    available["logger"] = LOGGER
    return {name: value for name, value in available.items() if name in names}


def _check(func: Callable[..., Any], spec: str, kind: str) -> None:
    """A coroutine function whose signature agentscope's own checker accepts, else ``TunerFunctionError``."""
    if not inspect.iscoroutinefunction(func):
        raise TunerFunctionError(
            f"{spec}: a {kind} function must be 'async def' (agentscope.tuner {kind} functions are coroutines)"
        )
    from astuner.tuner_compat import install

    install()
    from agentscope.tuner import check_judge_function, check_workflow_function

    checker = check_workflow_function if kind == "workflow" else check_judge_function
    try:
        checker(func)
    except ValueError as exc:
        needs = "task, model" if kind == "workflow" else "task, response"
        raise TunerFunctionError(
            f"{spec}: not an agentscope.tuner {kind} function ({exc}); parameters: {needs}, "
            "optional auxiliary_models, logger"
        ) from None
