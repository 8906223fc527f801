"""The example environment: an arithmetic quiz, served by ``quiz_server.py``.

Environment type ``arith_quiz``. Each task is a short quiz of arithmetic questions; an instance
plays one quiz. The first observation asks question 1; every step takes the agent's answer (the
last number in its text), says whether it was right, and asks the next question; the episode
terminates once every question got one answer. The score (``evaluate``) is the fraction answered
correctly, or with ``sparse`` 1.0 only when all were right — so with ``EnvServiceJudge`` a perfect
quiz is a success (reward 1.5) and a partly right one earns 0.5 × the fraction.

The questions are fixed (``QUIZZES``), so scripted replies for tests and the tutorial can be
written by hand; task ids are ``<split>-<index>``.

Not guaranteed: the answer parser is deliberately simple (the last integer or decimal in the
text, so "3 apples, 4 pears" answers 4); no partial credit within a question.
"""

from __future__ import annotations

import ast
import operator
import re

ENV_TYPE = "arith_quiz"

QUIZZES: dict[str, list[tuple[str, ...]]] = {
    "train": [
        ("17 + 25", "6 * 7"),
        ("48 - 19", "12 * 4"),
        ("33 + 9", "7 * 8"),
        ("90 - 45", "11 * 11"),
        ("5 * 5 + 5", "64 - 32"),
        ("23 + 38", "9 * 6"),
        ("100 - 1", "13 * 2"),
        ("8 * 9 - 2", "14 + 27"),
    ],
    "dev": [
        ("12 + 30", "9 * 8"),
        ("100 - 58", "13 * 3"),
        ("7 * 6 + 1", "81 - 27"),
        ("15 * 4", "96 - 48"),
    ],
}

_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_OPERATORS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul}


class UnknownTask(KeyError):
    """No quiz has this task id (or the split does not exist)."""


def task_ids(split: str) -> list[str]:
    """The task ids of one split; raises UnknownTask for a split that does not exist."""
    if split not in QUIZZES:
        raise UnknownTask(f"no split {split!r} (splits: {', '.join(QUIZZES)})")
    return [f"{split}-{i}" for i in range(len(QUIZZES[split]))]


def questions(task_id: str) -> list[tuple[str, int]]:
    """``(expression, answer)`` for each question of a task."""
    split, _, index = task_id.rpartition("-")
    if split not in QUIZZES or not index.isdigit() or int(index) >= len(QUIZZES[split]):
        raise UnknownTask(f"no task {task_id!r}")
    return [(expr, _evaluate(ast.parse(expr, mode="eval").body)) for expr in QUIZZES[split][int(index)]]


def answer_in(text: str) -> float | None:
    """The agent's answer: the last number in its text, or None when there is none."""
    found = _NUMBER.findall(text or "")
    return float(found[-1]) if found else None


class QuizGame:
    """One quiz being played: the state behind one environment instance."""

    def __init__(self, task_id: str) -> None:
        self.task_id = task_id
        self.questions = questions(task_id)
        self.results: list[bool] = []

    @property
    def done(self) -> bool:
        return len(self.results) == len(self.questions)

    def first_messages(self) -> list[dict]:
        intro = f"Arithmetic quiz with {len(self.questions)} questions. Answer each with one number."
        return [{"role": "user", "content": f"{intro}\n{self._question_text()}"}]

    def step(self, action_text: str) -> tuple[str, bool]:
        """Take one answer; returns ``(observation, terminated)``."""
        if self.done:
            return "The quiz is already over.", True
        expr, expected = self.questions[len(self.results)]
        given = answer_in(action_text)
        correct = given is not None and given == expected
        self.results.append(correct)
        if correct:
            verdict = "Correct."
        elif given is None:
            verdict = f"No number found in your answer; {expr} = {expected}."
        else:
            verdict = f"Wrong: {expr} = {expected}, not {_format(given)}."
        if self.done:
            return f"{verdict} The quiz is over: {sum(self.results)} of {len(self.questions)} correct.", True
        return f"{verdict}\n{self._question_text()}", False

    def score(self, sparse: bool = False) -> float:
        """Fraction answered correctly; with ``sparse`` 1.0 for a perfect quiz, else 0.0."""
        fraction = sum(self.results) / len(self.questions)
        return float(fraction == 1.0) if sparse else fraction

    def _question_text(self) -> str:
        number = len(self.results) + 1
        return f"Question {number} of {len(self.questions)}: what is {self.questions[number - 1][0]}?"


def _evaluate(node: ast.AST) -> int:
    if isinstance(node, ast.Constant) and isinstance(node.value, int):
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        return _OPERATORS[type(node.op)](_evaluate(node.left), _evaluate(node.right))
    raise ValueError(f"unsupported quiz expression: {ast.dump(node)}")


def _format(value: float) -> str:
    return str(int(value)) if value == int(value) else str(value)
