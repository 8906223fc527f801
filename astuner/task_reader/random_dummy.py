"""Placeholder tasks (``type: random_dummy``) for smoke-testing a pipeline without a dataset.

The tasks carry no real problem; they exist so that rollouts, samples and training steps can be
exercised end to end. Their order here is fixed (ids 0 to ``count - 1``); ``build_task_reader``
shuffles them reproducibly like any other reader's tasks.
"""

from __future__ import annotations

from astuner.schema import Task
from astuner.task_reader.base import TaskReader


class RandomDummyTaskReader(TaskReader):
    """``count`` dummy tasks; training and validation get the same list (as upstream)."""

    def __init__(self, count: int = 1000) -> None:
        self.count = count

    def get_training_tasks(self) -> list[Task]:
        return self._tasks()

    def get_validation_tasks(self) -> list[Task]:
        return self._tasks()

    def _tasks(self) -> list[Task]:
        return [
            Task(
                task_id=str(i),
                main_query=f"[dummy task @ {i}]",
                env_type="no_env",
                metadata={"random_number": i},
            )
            for i in range(self.count)
        ]
