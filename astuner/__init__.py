"""astuner (AgentScope Tuner): train the LLM behind an AgentScope agent with reinforcement learning.

``from astuner import Workflow, WorkflowTask, WorkflowOutput, ModelTuner`` — imported lazily so
that ``import astuner`` stays light and needs no agentscope for config or data work.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["AgentScopeLearnProtocol", "ModelTuner", "Task", "Workflow", "WorkflowOutput", "WorkflowTask"]

_EXPORTS = {
    "Workflow": "astuner.workflow",
    "AgentScopeLearnProtocol": "astuner.workflow",
    "WorkflowTask": "astuner.schema",
    "WorkflowOutput": "astuner.schema",
    "Task": "astuner.schema",
    "ModelTuner": "astuner.model_tuner",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'astuner' has no attribute {name!r}")
