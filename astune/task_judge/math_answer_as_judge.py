"""Seed-era ``astune.task_judge.math_answer_as_judge``: astuner's math judges."""

from astuner.task_judge.math_answer_as_judge import MathAnswerAndLlmAsJudge, MathAnswerAsJudge

__all__ = ["MathAnswerAndLlmAsJudge", "MathAnswerAsJudge"]
