"""The one way rollouts are fanned out over tasks: every caller that rolls out many tasks comes here.

``roll_out`` runs ``num_repeat`` rollouts of each task (one GRPO group per task, through
``Rollouts.run_group``) with at most ``max_parallel`` rollouts in flight across all groups (one
shared semaphore), and returns the results task by task, each task's rollouts in repeat order
(``repeat_index`` 0, 1, ...) — the order of ``tasks``, never the order rollouts finished in. Why:
the local backbone's advantages, the tool-discipline teacher traces and the debug backbone's
summaries are computed from this list, and the CPU learning miniature must reproduce bit for bit.

Callers: the debug backbone (``on_result`` appends each rollout to ``rollouts/debug.jsonl``
as it ends, with a progress bar), the local backbone (training steps and validation; neither), the
tool-discipline teacher traces (neither) and the Trinity workflow (one task's runs, numbered from
Trinity's ``run_id_base``, all at once).

How rollouts start: every rollout is made a task at once, task by task and repeat by repeat, and
they queue on the semaphore in that order (asyncio's semaphore is first come, first served), so
the first ``max_parallel`` to start are the first in the returned order. Not guaranteed: the order
rollouts *finish* in, hence the order ``on_result`` is called in; with a concurrent engine that
depends on timing. When the caller's task is cancelled (Ctrl-C, SIGTERM, an error escaping a
rollout or ``on_result``), the rollouts still in flight are cancelled and neither returned nor
passed to ``on_result``; ``Rollouts.run`` itself never raises for a failed rollout (it returns it
with ``error`` set), so an error escaping here is a bug in a caller's callback or a cancellation.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from tqdm import tqdm

if TYPE_CHECKING:
    from astuner.rollout import RolloutResult, Rollouts
    from astuner.schema import Task


async def roll_out(
    rollouts: Rollouts,
    tasks: Sequence[Task],
    num_repeat: int,
    max_parallel: int,
    *,
    on_result: Callable[[RolloutResult], None] | None = None,
    progress: str | None = None,
    first_repeat: int = 0,
) -> list[RolloutResult]:
    """``num_repeat`` rollouts of every task, ``max_parallel`` (at least 1) at once; results in task order.

    ``on_result`` is called with each rollout (finished or failed) the moment it ends, after its
    semaphore slot is freed, on the event loop (keep it quick: it blocks every rollout while it
    runs; an exception it raises escapes this call). ``progress``, when given, is the description
    of a tqdm bar counting ended rollouts on stderr; the bar stays hidden when ``$CI`` is set or
    stderr is not a terminal. Repeats are numbered from ``first_repeat``.
    """
    semaphore = asyncio.Semaphore(max(1, max_parallel))
    bar = None
    if progress is not None:
        quiet = bool(os.environ.get("CI")) or not sys.stderr.isatty()
        bar = tqdm(total=len(tasks) * num_repeat, desc=progress, unit="rollout", disable=quiet)
    ended = _ended(on_result, bar)
    try:
        groups = await asyncio.gather(*(rollouts.run_group(t, num_repeat, semaphore, on_result=ended, first_repeat=first_repeat)
                                       for t in tasks))
    finally:
        if bar is not None:
            bar.close()
    return [r for group in groups for r in group]


def _ended(on_result: Callable[[RolloutResult], None] | None, bar: tqdm | None) -> Callable[[RolloutResult], None] | None:
    """The per-rollout hook given to ``run_group``: the caller's callback, then one tick of the bar."""
    if on_result is None and bar is None:
        return None

    def ended(result: RolloutResult) -> None:
        if on_result is not None:
            on_result(result)
        if bar is not None:
            bar.update(1)

    return ended
