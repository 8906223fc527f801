"""Seed-era ``astune.context_manager.agentscope_cm.cmt_agentscope``: ``ASTuneProxy`` is astuner's ``ModelTuner``."""

from astuner.model_tuner import ModelTuner as ASTuneProxy

__all__ = ["ASTuneProxy"]
