"""The task-reader contract: where a run's tasks come from.

A reader produces two lists of :class:`~astuner.schema.Task`: training tasks (what a trainer
iterates over) and validation tasks (what evaluation and the ``debug`` backbone use). Readers load
lazily, when a list is asked for, so building one from a config never touches the disk or network;
every failure while loading is a :class:`TaskReaderError` whose one-line message names what failed
and where (file and line, dataset path/config/split, or config key), because these errors are
usually a user's typo and should read as such rather than as a traceback from ``datasets``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from astuner.schema import Task


class TaskReaderError(Exception):
    """Tasks could not be read; the message is one line naming the path, line or config key."""


class TaskReader(ABC):
    """A source of training and validation tasks.

    Each call returns a fresh list of fresh ``Task`` objects, so callers may reorder or mutate
    what they get without affecting later calls.
    """

    @abstractmethod
    def get_training_tasks(self) -> list[Task]:
        """The tasks to train on."""

    @abstractmethod
    def get_validation_tasks(self) -> list[Task]:
        """The tasks to evaluate on (and that the ``debug`` backbone rolls out)."""
