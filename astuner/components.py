"""The workflow and judge a config names, resolved one way for every backbone and for the preflight.

``rollout.agentscope_workflow`` and ``task_judge.judge_protocol`` each name a ``module->Attr``
(``astuner.resolve``). What may stand there:

- workflow: a class with ``async execute(workflow_task, model_tuner)`` (new style) or
  ``async agentscope_execute(init_messages, astune_proxy, config)`` (seed style), returned as is;
  or an agentscope.tuner-style async workflow function, returned wrapped as a workflow class
  (``astuner.tuner_functions``);
- judge: a class with ``compute_reward(...)``, returned as is; or an agentscope.tuner-style async
  judge function, returned wrapped as a judge class. Either way the caller builds it as ``cls(config)``.

Before importing the named module, ``astuner.tuner_compat.install()`` lets ``agentscope.tuner``
import without dspy, so a workflow module may start with ``from agentscope.tuner import ...``.

The debug and local backbones (``backbone.runtime``), the trinity launch and its worker processes
(``backbone.trinity``) and ``astuner.preflight`` all call these two functions, so a spec that passes
the preflight is the same object every rollout runs. Every failure is a ``ResolveError`` (one line,
quoting the spec).

Not guaranteed: that a class with the right method name also has the right signature (only
functions are checked, by agentscope's own checker).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from astuner.resolve import ResolveError, resolve
from astuner.tuner_compat import install as install_tuner_compat
from astuner.tuner_functions import TunerFunctionError, function_judge, function_workflow, is_tuner_function

WORKFLOW_METHODS = ("execute", "agentscope_execute")
JUDGE_METHODS = ("compute_reward",)

if TYPE_CHECKING:
    from astuner.config.schema import Config


def workflow_class(spec: str) -> type:
    """The workflow class ``spec`` names (a tuner-style function comes back wrapped)."""
    obj = _resolve(spec)
    if is_tuner_function(obj):
        return _wrap(function_workflow, obj, spec)
    if not isinstance(obj, type) or not any(hasattr(obj, m) for m in WORKFLOW_METHODS):
        raise ResolveError(
            f"{spec!r} is not a workflow: a class with async execute(...) or agentscope_execute(...), or an "
            "async workflow function (task, model[, auxiliary_models])"
        )
    return obj


def judge_class(spec: str) -> type:
    """The judge class ``spec`` names, to be built as ``cls(config)`` (a tuner-style function comes back wrapped)."""
    obj = _resolve(spec)
    if is_tuner_function(obj):
        return _wrap(function_judge, obj, spec)
    if not isinstance(obj, type) or not any(hasattr(obj, m) for m in JUDGE_METHODS):
        raise ResolveError(
            f"{spec!r} is not a judge: a class with compute_reward(...) (subclass BaseJudge), or an async judge "
            "function (task, response[, auxiliary_models])"
        )
    return obj


def build_judge(spec: str, config: Config) -> Any:
    """The judge instance a run uses: ``judge_class(spec)(config)``."""
    return judge_class(spec)(config)


def _resolve(spec: str) -> Any:
    install_tuner_compat()
    return resolve(spec)


def _wrap(adapter: Any, func: Any, spec: str) -> type:
    try:
        return adapter(func, spec)
    except TunerFunctionError as exc:
        raise ResolveError(str(exc)) from None
