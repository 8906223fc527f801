"""Judges (rollout → ``(raw_reward, is_success)``) and bad-case / madness detection."""

from astuner.task_judge.bad_cases import BAD_CASES, apply_penalties, detect_bad_cases
from astuner.task_judge.base_judge import BaseJudge, JudgeInput, JudgeInputError, JudgeUnavailableError
from astuner.task_judge.madness import MADNESS_CHECKS, compute_string_madness, detect_madness
from astuner.task_judge.math_answer_as_judge import MathAnswerAndLlmAsJudge, MathAnswerAsJudge

__all__ = [
    "BAD_CASES",
    "MADNESS_CHECKS",
    "BaseJudge",
    "JudgeInput",
    "JudgeInputError",
    "JudgeUnavailableError",
    "MathAnswerAndLlmAsJudge",
    "MathAnswerAsJudge",
    "apply_penalties",
    "compute_string_madness",
    "detect_bad_cases",
    "detect_madness",
]
