"""Registering astuner's workflow and task reader in Trinity's registries (idempotent)."""

from __future__ import annotations

from astuner.backbone.trinity.config import READER_NAME, WORKFLOW_NAME


def register() -> None:
    """Put ``astuner_workflow`` in Trinity's ``WORKFLOWS`` and ``astuner`` in its ``READER`` registry."""
    from trinity.buffer.reader import READER
    from trinity.common.workflows import WORKFLOWS

    from astuner.backbone.trinity.reader import AstunerTaskReader
    from astuner.backbone.trinity.workflow import AstunerWorkflow

    if WORKFLOWS.modules.get(WORKFLOW_NAME) is not AstunerWorkflow:
        WORKFLOWS.register_module(WORKFLOW_NAME, AstunerWorkflow, force=True)
    if READER.modules.get(READER_NAME) is not AstunerTaskReader:
        READER.register_module(READER_NAME, AstunerTaskReader, force=True)
