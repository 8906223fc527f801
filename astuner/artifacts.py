"""The files a run leaves under ``<exp-dir>/<experiment name>/`` (DESIGN.md, "Artifacts of a run").

``rollouts/<name>.jsonl`` holds one JSON object per rollout — what the log viewer reads: ids,
reward, success, final answer, bad-case flags, the conversation, and each sample with its token
ids, loss mask, logprobs and the decoded text of every token. ``summary.json`` holds a debug run's
summary.
"""

from __future__ import annotations

import json
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
        "num_calls": result.num_calls,
        "num_tool_calls": result.num_tool_calls,
        "timeline_breaks": result.timeline_breaks,
        "context_overflow": result.context_overflow,
        "attempts": result.attempts,
        "env": result.env,
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


def write_json(path: Path, data: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))
