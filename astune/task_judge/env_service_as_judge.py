"""Seed-era ``astune.task_judge.env_service_as_judge``: astuner's ``EnvServiceJudge``."""

from astuner.task_judge.env_service_as_judge import EnvServiceJudge

__all__ = ["EnvServiceJudge"]
