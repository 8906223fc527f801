"""Reproducible task order: a reader wrapper that shuffles with its own seeded RNG.

Upstream shuffled with the global, unseeded NumPy RNG, so two runs of the same config saw tasks in
different orders (and the ``debug`` backbone, which rolls out the first N validation tasks, picked
different tasks each time). Here every list is shuffled by a fresh ``random.Random(seed)``: the
same seed gives the same order on every call and every run, and the global ``random`` state is
never read or changed.
"""

from __future__ import annotations

import random

from astuner.schema import Task
from astuner.task_reader.base import TaskReader


class ShuffledTaskReader(TaskReader):
    """Wraps ``reader``; both lists come back shuffled by ``random.Random(seed)``."""

    def __init__(self, reader: TaskReader, seed: int) -> None:
        self.reader = reader
        self.seed = seed

    def get_training_tasks(self) -> list[Task]:
        return self._shuffled(self.reader.get_training_tasks())

    def get_validation_tasks(self) -> list[Task]:
        return self._shuffled(self.reader.get_validation_tasks())

    def _shuffled(self, tasks: list[Task]) -> list[Task]:
        random.Random(self.seed).shuffle(tasks)
        return tasks
