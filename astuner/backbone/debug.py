"""The ``debug`` backbone: roll out the first N tasks in this process, judge, write logs, never train.

Everything runs in the caller's process on one asyncio event loop — no Ray, no subprocess for the
workflow — so breakpoints in workflow and judge code are hit (``python launcher.py --backbone
debug --conf ...`` under VSCode). Tasks are the first ``debug.debug_first_n_tasks`` of the
``debug.debug_split`` split (after the reader's seeded shuffle, so the same tasks every time; the
training split is used when the validation split is empty); each runs ``rollout.num_repeat`` times,
``debug.debug_max_parallel`` rollouts at once, with the configured sampling parameters.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

from tqdm import tqdm

from astuner.artifacts import write_json, write_rollouts
from astuner.backbone.runtime import build_runtime
from astuner.rollout import RolloutResult, summarize
from astuner.schema import Task
from astuner.task_reader import build_task_reader


def select_tasks(config: Any) -> list[Task]:
    a = config.astuner
    reader = build_task_reader(a.task_reader, seed=a.seed, shuffle=a.task_reader.shuffle)
    tasks = reader.get_validation_tasks() if a.debug.debug_split == "validation" else []
    if not tasks:
        tasks = reader.get_training_tasks()
    return tasks[: a.debug.debug_first_n_tasks]


def run(config: Any, exp_dir: Path, args: Any = None) -> int:
    """CLI entry: exit code 1 when every rollout failed, else 0 (failures are counted and shown)."""
    summary = run_debug(config, exp_dir)
    return 1 if summary["rollouts"] and summary["failed_rollouts"] == summary["rollouts"] else 0


def run_debug(config: Any, exp_dir: Path) -> dict[str, Any]:
    """Run the debug job; returns the summary (also written to ``summary.json``)."""
    a = config.astuner
    tasks = select_tasks(config)
    runtime = build_runtime(config)
    try:
        results = asyncio.run(_roll_out(runtime.rollouts, tasks, a.rollout.num_repeat, a.debug.debug_max_parallel))
    finally:
        runtime.close()
    rollouts_file = write_rollouts(exp_dir / "rollouts" / "debug.jsonl", results, runtime.tokenizer)
    summary = {"experiment": a.experiment_name, "tasks": len(tasks), **summarize(results)}
    write_json(exp_dir / "summary.json", summary)
    _print_summary(summary, results, rollouts_file)
    return summary


async def _roll_out(rollouts: Any, tasks: list[Task], num_repeat: int, max_parallel: int) -> list[RolloutResult]:
    semaphore = asyncio.Semaphore(max(1, max_parallel))
    quiet = bool(os.environ.get("CI")) or not sys.stderr.isatty()
    bar = tqdm(total=len(tasks) * num_repeat, desc="rollouts", unit="rollout", disable=quiet)

    async def one(task: Task, i: int) -> RolloutResult:
        async with semaphore:
            result = await rollouts.run(task, i)
        bar.update(1)
        return result

    try:
        return list(await asyncio.gather(*(one(t, i) for t in tasks for i in range(num_repeat))))
    finally:
        bar.close()


def _print_summary(summary: dict[str, Any], results: list[RolloutResult], rollouts_file: Path) -> None:
    print(
        f"debug: {summary['rollouts']} rollouts of {summary['tasks']} tasks | "
        f"success rate {summary['success_rate']:.3f} | reward mean {summary['reward_mean']:.3f} | "
        f"tool calls/rollout {summary['tool_calls_per_rollout']:.2f} | failed {summary['failed_rollouts']}"
    )
    bad = {k.split("/", 1)[1]: v for k, v in summary.items() if k.startswith(("bad_case/", "madness/"))}
    print("bad cases: " + ", ".join(f"{k} {v}" for k, v in bad.items()))
    print(f"rollouts: {rollouts_file}")
    failed = [r for r in results if r.error]
    if failed:
        print(f"{len(failed)} rollout(s) failed; first error ({failed[0].rollout_id}):", file=sys.stderr)
        print(failed[0].error, file=sys.stderr)
