"""Seed-era ``astune.task_judge.judge_base``: ``JudgeBase`` is astuner's ``BaseJudge``."""

from astuner.task_judge.base_judge import BaseJudge as JudgeBase

__all__ = ["JudgeBase"]
