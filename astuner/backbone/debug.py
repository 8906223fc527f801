"""The ``debug`` backbone: roll out the first N tasks in this process, judge, write logs, never train.

Everything runs in the caller's process on one asyncio event loop — no Ray, no subprocess for the
workflow — so breakpoints in workflow and judge code are hit (``python launcher.py --backbone
debug --conf ...`` under VSCode). Tasks are the first ``debug.debug_first_n_tasks`` of the
``debug.debug_split`` split (after the reader's seeded shuffle, so the same tasks every time; the
training split is used when the validation split is empty); each runs ``rollout.num_repeat`` times,
``debug.debug_max_parallel`` rollouts at once, with the configured sampling parameters.

Nothing that ended is lost: each rollout, finished or failed, is appended to
``rollouts/debug.jsonl`` the moment it ends (``RolloutLog``). When the run stops early — Ctrl-C,
SIGTERM, or an error escaping the rollouts — the rollouts still in flight are cancelled (and not
recorded), ``summary.json`` and the printed summary cover the rollouts that ended and say why the
run stopped (``stopped_by``), and the exception goes on to the CLI (exit 130 for Ctrl-C, 143 for
SIGTERM). Not guaranteed: a second Ctrl-C or SIGTERM during that cleanup, or SIGKILL, skips the
summary (the rollouts file still holds every line appended before).

After the summary it draws ``debug_summary.png`` (rates, reward and response-length histograms of
the rollouts that ended; ``astuner.tracking.summary_plot``) and prints the log viewer's command
for the run; the debug backbone feeds no tracker.
"""

from __future__ import annotations

import asyncio
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from astuner.artifacts import RolloutLog, write_json
from astuner.backbone.runtime import build_runtime
from astuner.config.schema import Config
from astuner.interrupt import Terminated, sigterm_raises
from astuner.rollout import RolloutResult, Rollouts, summarize
from astuner.rollout_service import roll_out
from astuner.schema import Task
from astuner.task_reader import build_task_reader
from astuner.tracking.summary_plot import SUMMARY_PNG, plot_summary

if TYPE_CHECKING:
    import argparse

MAX_LISTED_FAILURES = 20
"""Failed rollouts listed by id in the summary (all are counted; every error is in the rollouts file)."""


def select_tasks(config: Config) -> list[Task]:
    a = config.astuner
    reader = build_task_reader(a.task_reader, seed=a.seed, shuffle=a.task_reader.shuffle)
    tasks = reader.get_validation_tasks() if a.debug.debug_split == "validation" else []
    if not tasks:
        tasks = reader.get_training_tasks()
    return tasks[: a.debug.debug_first_n_tasks]


def run(config: Config, exp_dir: Path, args: argparse.Namespace | None = None) -> int:
    """CLI entry: exit code 1 when every rollout failed, else 0 (failures are counted and shown).

    Ctrl-C and SIGTERM propagate as ``KeyboardInterrupt`` and ``Terminated`` after the summary of
    what finished is written.
    """
    with sigterm_raises():
        summary = run_debug(config, exp_dir)
    return 1 if summary["rollouts"] and summary["failed_rollouts"] == summary["rollouts"] else 0


def run_debug(config: Config, exp_dir: Path) -> dict[str, Any]:
    """Run the debug job; returns the summary (also written to ``summary.json``)."""
    a = config.astuner
    tasks = select_tasks(config)
    runtime = build_runtime(config)
    ended: list[RolloutResult] = []
    stopped_by: str | None = None
    try:
        with RolloutLog(exp_dir / "rollouts" / "debug.jsonl", runtime.tokenizer) as log:

            def record(result: RolloutResult) -> None:
                ended.append(result)
                log.append(result)

            try:
                parallel = a.debug.debug_max_parallel
                asyncio.run(_roll_out(runtime.rollouts, tasks, a.rollout.num_repeat, parallel, record))
            except BaseException as exc:
                stopped_by = _stop_reason(exc)
                raise
            finally:
                summary = _summary(config, tasks, ended, stopped_by)
                write_json(exp_dir / "summary.json", summary)
                _print_summary(summary, ended, log.path)
                _plot_and_point_to_viewer(exp_dir, summary, ended)
    finally:
        runtime.close()
    return summary


def _stop_reason(exc: BaseException) -> str:
    if isinstance(exc, KeyboardInterrupt):
        return "SIGINT"
    if isinstance(exc, Terminated):
        return "SIGTERM"
    return f"error: {type(exc).__name__}: {_first_line(str(exc))}"


def _first_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[0] if lines else ""


def _summary(config: Config, tasks: list[Task], ended: list[RolloutResult], stopped_by: str | None) -> dict[str, Any]:
    a = config.astuner
    failures = [{"rollout_id": r.rollout_id, "error": _first_line(r.error)} for r in ended if r.error is not None]
    return {
        "experiment": a.experiment_name,
        "tasks": len(tasks),
        "planned_rollouts": len(tasks) * a.rollout.num_repeat,
        "stopped_by": stopped_by,
        **summarize(ended),
        "failures": failures[:MAX_LISTED_FAILURES],
    }


async def _roll_out(
    rollouts: Rollouts, tasks: list[Task], num_repeat: int, max_parallel: int,
    on_finish: Callable[[RolloutResult], None],
) -> list[RolloutResult]:
    """Every rollout, ``max_parallel`` at once, through ``astuner.rollout_service.roll_out`` (one
    ``Rollouts.run_group`` per task); ``on_finish`` gets each result (finished or failed) as it ends,
    and a ``rollouts`` bar counts them on a terminal. Results in task order, repeats in order. A name
    of its own so a test can make the run fail between the engine's start and its end."""
    return await roll_out(rollouts, tasks, num_repeat, max_parallel, on_result=on_finish, progress="rollouts")


def _print_summary(summary: dict[str, Any], results: list[RolloutResult], rollouts_file: Path) -> None:
    n, failed = summary["rollouts"], summary["failed_rollouts"]
    if summary["stopped_by"] is None:
        head = f"debug: {n} rollouts of {summary['tasks']} tasks"
    else:
        head = f"debug: stopped by {summary['stopped_by']} after {n} of {summary['planned_rollouts']} rollouts"
    print(
        f"{head} | success rate {summary['success_rate']:.3f} ({summary['successes']}/{n}, {failed} failed) | "
        f"reward mean {summary['reward_mean']:.3f} | tool calls/rollout {summary['tool_calls_per_rollout']:.2f}",
        flush=True,
    )
    bad = {k.split("/", 1)[1]: v for k, v in summary.items() if k.startswith(("bad_case/", "madness/"))}
    print("bad cases: " + ", ".join(f"{k} {v}" for k, v in bad.items()))
    print(f"rollouts: {rollouts_file}", flush=True)
    failures = [r for r in results if r.error]
    if failures:
        ids = ", ".join(r.rollout_id for r in failures[:MAX_LISTED_FAILURES])
        more = f" and {len(failures) - MAX_LISTED_FAILURES} more" if len(failures) > MAX_LISTED_FAILURES else ""
        first = failures[0].rollout_id
        print(f"{len(failures)} rollout(s) failed ({ids}{more}); first error ({first}):", file=sys.stderr)
        print(failures[0].error, file=sys.stderr, flush=True)


def _plot_and_point_to_viewer(exp_dir: Path, summary: dict[str, Any], results: list[RolloutResult]) -> None:
    """Draw ``debug_summary.png`` (rates, reward and length histograms) and print how to browse the run.

    A plot that cannot be drawn (matplotlib missing, no rollout ended) is a one-line note, never an error.
    """
    ok = [r for r in results if r.error is None]
    try:
        png = plot_summary(
            summary, [r.reward for r in ok], [r.stats.generated_tokens for r in ok], exp_dir / SUMMARY_PNG, exp_dir.name
        )
        print(f"plot: {png}")
    except Exception as exc:  # a plot must never fail the run
        print(f"plot: not drawn ({_first_line(str(exc)) or type(exc).__name__})", file=sys.stderr)
    print(f"viewer: python -m astuner.logview --exp-dir {shlex.quote(str(exp_dir))}", flush=True)
