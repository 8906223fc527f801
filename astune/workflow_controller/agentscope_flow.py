"""Seed-era ``astune.workflow_controller.agentscope_flow``: ``ASTuneProxy`` is astuner's ``ModelTuner``,
the model tuner a seed-style workflow receives as ``astune_proxy``."""

from astuner.model_tuner import ModelTuner as ASTuneProxy

__all__ = ["ASTuneProxy"]
