"""Seed-era ``astune.workflow``: astuner's ``Workflow``, ``WorkflowTask`` and ``WorkflowOutput``."""

from astuner.schema import WorkflowOutput, WorkflowTask
from astuner.workflow import AgentScopeLearnProtocol, Workflow

__all__ = ["AgentScopeLearnProtocol", "Workflow", "WorkflowOutput", "WorkflowTask"]
