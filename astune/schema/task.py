"""Seed-era ``astune.schema.task``: astuner's ``Task``, ``WorkflowTask`` and ``WorkflowOutput``."""

from astuner.schema import Task, WorkflowOutput, WorkflowTask

__all__ = ["Task", "WorkflowOutput", "WorkflowTask"]
