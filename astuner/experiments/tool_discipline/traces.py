"""Teacher traces: the unchanged Math Agent workflow run against the scripted teacher.

Why through the real stack: the supervised data must be exactly what the policy will later see and
produce in GRPO — the same system prompt and tool schemas rendered by the same chat template, the
same proxy that builds token-exact samples with loss masks, the same sandboxed tool output, the
same judge and bad-case flags. ``collect`` therefore uses ``build_runtime`` with the teacher as the
engine and ``Rollouts``, as every backbone does, and returns the ``RolloutResult``s: their
``samples`` are the SFT data; their flags and rewards describe the teacher.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from astuner.backbone.runtime import build_runtime
from astuner.rollout import RolloutResult, summarize
from astuner.schema import Task


def collect(config: Any, tokenizer: Any, engine: Any, tasks: Sequence[Task], *, num_repeat: int = 1, parallel: int = 64) -> list[RolloutResult]:
    """``num_repeat`` rollouts of every task with ``engine`` playing the model; failed ones included."""
    runtime = build_runtime(config, tokenizer=tokenizer, engine=engine)

    async def run_all() -> list[RolloutResult]:
        semaphore = asyncio.Semaphore(max(1, parallel))
        groups = await asyncio.gather(*(runtime.rollouts.run_group(t, num_repeat, semaphore) for t in tasks))
        return [r for g in groups for r in g]

    try:
        return asyncio.run(run_all())
    finally:
        runtime.close()


def describe(results: Sequence[RolloutResult]) -> dict[str, float]:
    """Success rate, mean reward and each bad case's rate over finished rollouts."""
    summary = summarize(list(results))
    n = max(1, summary["rollouts"] - summary["failed_rollouts"])
    out = {"rollouts": float(summary["rollouts"]), "failed": float(summary["failed_rollouts"]),
           "success_rate": summary["success_rate"], "reward_mean": summary["reward_mean"]}
    for key, value in summary.items():
        if key.startswith("bad_case/"):
            out[key] = value / n
    return out
