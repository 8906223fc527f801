"""Replay scripted assistant replies from a JSONL file, for tests and demos without a model.

A random tiny model never calls tools or answers questions, so workflows, judges, bad-case
detection and the log viewer could not be exercised end to end. The scripted engine plays
the model's part: each line of the file is one entry,

- ``{"task_id": "...", "replies": ["...", ...]}`` — used for that task;
- ``{"query": "...", "replies": [...]}`` — used for a task whose main query equals this text;
- ``{"default": true, "replies": [...]}`` — used for any other task.

For a call, ``context`` (filled by the model tuner) names ``task_id``, ``query``, ``rollout_id``
and ``call_index`` (0 for a rollout's first call). The entry is chosen by task id, then query,
then default; the reply is number ``call_index``, the last one repeating when a rollout makes more
calls than scripted. The text is tokenized with ``tokenizer.encode(text, add_special_tokens=False)``
and ``end_of_turn_id`` is appended; logprobs are all 0.0 and finish is ``"stop"``, or ``"length"``
when ``params.max_tokens`` cuts the reply short.

Not guaranteed: the ids are what a real model would have produced for that text (a model may
tokenize the same string differently); sampling parameters other than ``max_tokens`` are ignored;
``params.stop_token_ids`` inside a reply do not end it early.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from astuner.engine.base import Completion, EngineError, SamplingParams


def load_script(path: Path) -> tuple[dict[str, list[str]], dict[str, list[str]], list[str] | None]:
    """Read and check the file: (replies by task id, replies by query, default replies)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise EngineError(f"cannot read scripted replies file {path}: {exc.strerror or exc}") from None
    by_task: dict[str, list[str]] = {}
    by_query: dict[str, list[str]] = {}
    default: list[str] | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as exc:
            raise EngineError(f"{where}: invalid JSON ({exc.msg})") from None
        if not isinstance(entry, dict):
            raise EngineError(f"{where}: expected an object with 'replies', got {type(entry).__name__}")
        replies = entry.get("replies")
        if not isinstance(replies, list) or not replies or not all(isinstance(r, str) for r in replies):
            raise EngineError(f"{where}: 'replies' must be a non-empty list of strings")
        keys = [key for key in ("task_id", "query", "default") if key in entry]
        if len(keys) != 1:
            raise EngineError(f"{where}: give exactly one of 'task_id', 'query' or 'default', got {keys or 'none'}")
        if keys[0] == "default":
            if entry["default"] is not True:
                raise EngineError(f"{where}: 'default' must be true")
            if default is not None:
                raise EngineError(f"{where}: a second default entry")
            default = replies
            continue
        value = entry[keys[0]]
        if not isinstance(value, str):
            raise EngineError(f"{where}: '{keys[0]}' must be a string")
        table = by_task if keys[0] == "task_id" else by_query
        if value in table:
            raise EngineError(f"{where}: {keys[0]} {value!r} appears twice")
        table[value] = replies
    if not by_task and not by_query and default is None:
        raise EngineError(f"scripted replies file {path} has no entries")
    return by_task, by_query, default


class ScriptedEngine:
    """Returns scripted replies as token ids; see the module docstring for the file format."""

    def __init__(self, path: str | Path, tokenizer: Any, end_of_turn_id: int) -> None:
        self.path = Path(path)
        self.tokenizer = tokenizer
        self.end_of_turn_id = end_of_turn_id
        self._by_task, self._by_query, self._default = load_script(self.path)

    def replies_for(self, context: dict | None) -> list[str]:
        """The reply list chosen for a call's context: by task id, then query, then default."""
        context = context or {}
        task_id = context.get("task_id")
        if task_id is not None and str(task_id) in self._by_task:
            return self._by_task[str(task_id)]
        query = context.get("query")
        if query is not None and query in self._by_query:
            return self._by_query[query]
        if self._default is not None:
            return self._default
        raise EngineError(f"{self.path} has no replies for task {task_id!r} (query {str(query)[:80]!r}) and no default entry")

    async def generate(self, prompt_ids: list[int], params: SamplingParams, *, context: dict | None = None) -> Completion:
        """The scripted reply for this call, tokenized, with the end-of-turn token appended."""
        replies = self.replies_for(context)
        index = int((context or {}).get("call_index", 0))
        text = replies[min(max(index, 0), len(replies) - 1)]
        token_ids = list(self.tokenizer.encode(text, add_special_tokens=False)) + [self.end_of_turn_id]
        finish = "stop"
        if len(token_ids) > params.max_tokens:
            token_ids = token_ids[: max(params.max_tokens, 0)]
            finish = "length"
        return Completion(token_ids=token_ids, logprobs=[0.0] * len(token_ids), finish_reason=finish)

    def close(self) -> None:
        """Nothing to release."""
