"""The completions table a validation step sends to the trackers that show tables.

``completion_rows(results)`` picks a few of a validation's rollouts — the first rollout of each
task in task order, then the second of each, and so on, at most ``TABLE_ROWS`` — and keeps, for
each: task id, repeat, reward, success, and the text a reader wants to see: the final answer, or
the last assistant reply when there is none, or the last line of a failed rollout's error (the
exception); cut to ``TABLE_TEXT_CHARS`` characters. The whole conversation stays in
``rollouts/val_step_*.jsonl``.

Not guaranteed: that the chosen rollouts are representative (they are the first ones, not a
random or stratified sample), or that the text is the answer the judge scored (a workflow may
return a final answer the judge does not read).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from astuner.rollout import RolloutResult

TABLE_ROWS = 8
"""Most rows of one validation table."""

TABLE_TEXT_CHARS = 400
"""Most characters of a row's text; a longer one ends with '…'."""

COLUMNS = ("task_id", "repeat", "reward", "success", "text")
"""Column names, in order, in every tracker."""


@dataclass(frozen=True)
class CompletionRow:
    """One row of the table."""

    task_id: str
    repeat: int
    reward: float
    success: bool
    text: str

    def values(self) -> list[Any]:
        """The row's cells in ``COLUMNS`` order."""
        return [self.task_id, self.repeat, round(self.reward, 4), self.success, self.text]


def completion_rows(results: Sequence[RolloutResult], limit: int = TABLE_ROWS) -> list[CompletionRow]:
    """At most ``limit`` rows from a validation's rollouts (module docstring: which ones, what text)."""
    order = sorted(range(len(results)), key=lambda i: (results[i].repeat_index, i))
    rows = []
    for i in order[:limit]:
        r = results[i]
        rows.append(CompletionRow(str(r.task_id), int(r.repeat_index), float(r.reward), bool(r.is_success), _text(r)))
    return rows


def markdown(rows: Sequence[CompletionRow]) -> str:
    """The rows as a Markdown table (TensorBoard's text plugin renders it); ``|`` and newlines escaped."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in rows:
        cells = [str(v).replace("|", "\\|").replace("\r", " ").replace("\n", "<br>") for v in row.values()]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def columns(rows: Sequence[CompletionRow]) -> dict[str, list[Any]]:
    """The rows as column name -> values (mlflow's ``log_table``)."""
    return {name: [row.values()[i] for row in rows] for i, name in enumerate(COLUMNS)}


def _text(result: RolloutResult) -> str:
    if result.error is not None:
        lines = result.error.strip().splitlines()
        return _cut("error: " + (lines[-1] if lines else ""))
    answer = result.final_answer
    if answer is None or answer == "":
        answer = next((m.get("content") for m in reversed(result.messages) if m.get("role") == "assistant"), "")
    return _cut(_as_text(answer))


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):  # content blocks
        return "".join(b.get("text", "") if isinstance(b, dict) else str(b) for b in value)
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return str(value)


def _cut(text: str) -> str:
    text = text.strip()
    return text if len(text) <= TABLE_TEXT_CHARS else text[: TABLE_TEXT_CHARS - 1] + "…"
