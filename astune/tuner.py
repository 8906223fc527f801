"""Seed-era ``astune.tuner``: astuner's ``ModelTuner``."""

from astuner.model_tuner import ModelTuner

__all__ = ["ModelTuner"]
