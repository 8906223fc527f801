"""The files a run leaves under ``<exp-dir>/<experiment name>/`` (docs/architecture.md, "Artifacts of a run").

``rollouts/<name>.jsonl`` holds one JSON object per rollout — what the log viewer reads: ids,
reward, success, final answer, bad-case flags, the conversation, and each sample with its token
ids, loss mask, logprobs and the decoded text of every token. ``summary.json`` holds a debug run's
summary. ``write_rollouts`` writes a whole list at once; ``RolloutLog`` appends each rollout as it
ends, so that an interrupted or crashed run keeps every rollout that ended before.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from astuner.rollout import RolloutResult


def rollout_record(result: RolloutResult, tokenizer: Any) -> dict[str, Any]:
    """A JSON-ready record of one rollout, samples included with per-token text."""
    samples = []
    for s in result.samples:
        d = s.to_dict()
        d["tokens"] = [tokenizer.decode([t], skip_special_tokens=False) for t in s.token_ids]
        samples.append(d)
    return {
        "task_id": result.task_id,
        "repeat_index": result.repeat_index,
        "rollout_id": result.rollout_id,
        "reward": result.reward,
        "raw_reward": result.raw_reward,
        "is_success": result.is_success,
        "final_answer": _jsonable(result.final_answer),
        "bad_cases": result.bad_cases,
        "madness": result.madness,
        "reward_terms": result.reward_terms,
        "num_calls": result.num_calls,
        "num_tool_calls": result.num_tool_calls,
        "timeline_breaks": result.timeline_breaks,
        "context_overflow": result.context_overflow,
        "attempts": result.attempts,
        "env": result.env,
        "metrics": _jsonable(result.metrics),
        "error": result.error,
        "messages": _jsonable(result.messages),
        "samples": samples,
    }


def write_rollouts(path: Path, results: list[RolloutResult], tokenizer: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for r in results:
            f.write(json.dumps(rollout_record(r, tokenizer), ensure_ascii=False) + "\n")
    return path


class RolloutLog:
    """A rollouts JSONL file that grows by one line per rollout as it ends (``append``).

    Each line goes to the operating system in ``write()`` calls of that line alone, before
    ``append`` returns, so Ctrl-C, SIGTERM, SIGKILL or a crash of the process keep every line
    appended before it. Lines are in the order rollouts ended (``task_id`` and ``repeat_index``
    say which is which), not in task order. Opening the log empties an existing file of the same path.
    Not guaranteed: that lines survive a crash of the machine itself (no ``fsync``), or that a
    process killed inside a very large ``write()`` leaves its last line whole (readers should skip
    a last line that does not parse).
    """

    def __init__(self, path: Path, tokenizer: Any) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.tokenizer = tokenizer
        self._fd: int | None = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)

    def append(self, result: RolloutResult) -> None:
        if self._fd is None:
            raise ValueError(f"{self.path} is closed")
        data = (json.dumps(rollout_record(result, self.tokenizer), ensure_ascii=False) + "\n").encode("utf-8")
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view):]

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RolloutLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_json(path: Path, data: dict[str, Any]) -> Path:
    """Write ``data`` to ``path`` atomically (a temporary file renamed into place): never half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))
