"""Seed-era ``astune`` imports, mapped onto astuner.

Workflows and judges written for upstream's ``astune`` package (Nov 2025, the Math Agent spec's
era) import helpers from it. This package lets that code run unchanged: every name below is the
astuner object itself (``is``-identical), not a copy or a subclass, so ``isinstance`` checks and
class identity behave as in astuner.

=================================================  =========================  ===========================================
seed-era import                                    names                      astuner object
=================================================  =========================  ===========================================
``astune``                                         ModelTuner, Workflow,      ``astuner.model_tuner.ModelTuner``,
                                                   WorkflowTask,              ``astuner.workflow.Workflow``,
                                                   WorkflowOutput, Task,      ``astuner.schema.{WorkflowTask, WorkflowOutput,
                                                   AgentScopeLearnProtocol    Task}``, ``astuner.workflow.AgentScopeLearnProtocol``
``astune.workflow``                                Workflow, WorkflowTask,    the same
                                                   WorkflowOutput
``astune.tuner``                                   ModelTuner                 ``astuner.model_tuner.ModelTuner``
``astune.schema.task``                             Task, WorkflowTask,        ``astuner.schema``
                                                   WorkflowOutput
``astune.protocol.agentscope_protocol``            AgentScopeLearnProtocol    ``astuner.workflow.AgentScopeLearnProtocol``
``astune.workflow_controller.agentscope_flow``     ASTuneProxy                ``astuner.model_tuner.ModelTuner`` (the model
                                                                              tuner a seed workflow receives as astune_proxy)
``astune.context_manager.agentscope_cm``           ASTuneProxy                ``astuner.model_tuner.ModelTuner``
``.cmt_agentscope``
``astune.task_judge.judge_base``                   JudgeBase                  ``astuner.task_judge.base_judge.BaseJudge``
                                                                              (``compute_reward(judge_input_dictionary)``
                                                                              works, as upstream's)
``astune.task_judge.math_answer_as_judge``         MathAnswerAsJudge,         ``astuner.task_judge.math_answer_as_judge``
                                                   MathAnswerAndLlmAsJudge
``astune.task_judge.env_service_as_judge``         EnvServiceJudge            ``astuner.task_judge.env_service_as_judge``
=================================================  =========================  ===========================================

``import astune`` is light (names load on first use, as ``astuner``'s); the submodules import the
astuner module they map to, which for the model tuner means agentscope. Config strings are a
separate mechanism: ``astune.<module>->Class`` in a YAML file resolves to ``astuner.<module>``
(``astuner.resolve``), for every astuner module.

Not provided: upstream's internals that workflows did not import (the context trackers, the Trinity
and verl runners, ``astune.utils`` helpers such as ``RobustDashScopeChatModel``, the
``construct_alien_llm_chat_fn`` LLM bridge); importing them fails with ``ModuleNotFoundError``.
Behaviour is astuner's where the two differ (docs/architecture.md).
"""

from __future__ import annotations

from typing import Any

__all__ = ["AgentScopeLearnProtocol", "ModelTuner", "Task", "Workflow", "WorkflowOutput", "WorkflowTask"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        import astuner

        return getattr(astuner, name)
    raise AttributeError(f"module 'astune' has no attribute {name!r}")
