"""Teacher traces: the unchanged Math Agent workflow run against the scripted teacher.

Why through the real stack: the supervised data must be exactly what the policy will later see and
produce in GRPO — the same system prompt and tool schemas rendered by the same chat template, the
same model tuner that builds token-exact samples with loss masks, the same sandboxed tool output, the
same judge and bad-case flags. ``collect`` therefore uses ``build_runtime`` with the teacher as the
engine and ``Rollouts``, as every backbone does, and returns the ``RolloutResult``s: their
``samples`` are the SFT data; their flags and rewards describe the teacher.

Why ``collect_teacher`` can use several processes: one process runs about 120 teacher rollouts per
second, bound by its own Python work (the agent, the model tuner's prompt rendering and tokenization),
not by the tool or the teacher. The teacher's replies depend only on its seed, the rollout id and
the problem, so splitting the tasks across processes gives the same results in the same order.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from astuner.backbone.runtime import build_runtime
from astuner.rollout import RolloutResult, summarize
from astuner.rollout_service import roll_out
from astuner.schema import Task

if TYPE_CHECKING:
    from astuner.config.schema import Config
    from astuner.engine.base import Engine
    from experiments.tool_discipline.problems import Problem
    from experiments.tool_discipline.teacher import TeacherRates


def collect(config: Config, tokenizer: Any, engine: Engine, tasks: Sequence[Task], *, num_repeat: int = 1,
            parallel: int = 64) -> list[RolloutResult]:
    """``num_repeat`` rollouts of every task with ``engine`` playing the model, ``parallel`` at once
    (``astuner.rollout_service.roll_out``); task by task in ``tasks`` order, failed ones included."""
    runtime = build_runtime(config, tokenizer=tokenizer, engine=engine)
    try:
        return asyncio.run(roll_out(runtime.rollouts, tasks, num_repeat, parallel))
    finally:
        runtime.close()


@dataclass(frozen=True)
class TeacherSpec:
    """What a process needs to build the teacher engine: ``TeacherEngine(problems, tokenizer,
    end_of_turn_id, rates, seed=seed)`` with the tokenizer loaded from ``tokenizer_dir``."""

    problems: tuple[Problem, ...]
    tokenizer_dir: str
    rates: TeacherRates
    seed: int


def collect_teacher(config: Config, spec: TeacherSpec, tasks: Sequence[Task], *, num_repeat: int = 1,
                    parallel: int = 64, processes: int = 1) -> list[RolloutResult]:
    """``num_repeat`` teacher rollouts of every task, in task order, in ``processes`` processes
    (contiguous chunks of the tasks; spawned, so nothing of this process's state is inherited).
    Each process gets ``python_tool.pool_size // processes`` (at least 2) warm sandboxes."""
    if processes <= 1 or len(tasks) < 2 * processes:
        return _collect_chunk(config, spec, list(tasks), num_repeat, parallel)
    size = -(-len(tasks) // processes)
    chunks = [list(tasks[i: i + size]) for i in range(0, len(tasks), size)]
    pool_size = max(2, config.astuner.python_tool.pool_size // processes)
    config = config.model_copy(deep=True)
    config.astuner.python_tool.pool_size = pool_size
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=len(chunks), mp_context=context) as executor:
        futures = [executor.submit(_collect_chunk, config, spec, chunk, num_repeat, max(1, parallel // len(chunks)))
                   for chunk in chunks]
        return [r for future in futures for r in future.result()]


def _collect_chunk(config: Config, spec: TeacherSpec, tasks: list[Task], num_repeat: int,
                   parallel: int) -> list[RolloutResult]:
    from transformers import AutoTokenizer

    from astuner.chat_template import ChatTemplate
    from experiments.tool_discipline.teacher import TeacherEngine

    tokenizer = AutoTokenizer.from_pretrained(str(Path(spec.tokenizer_dir)))
    teacher = TeacherEngine(spec.problems, tokenizer, ChatTemplate(tokenizer).turn.end_of_turn_id, spec.rates, seed=spec.seed)
    return collect(config, tokenizer, teacher, tasks, num_repeat=num_repeat, parallel=parallel)


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
