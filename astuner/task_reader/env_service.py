"""Tasks served by an environment service (``type: env_service``), e.g. AppWorld or the example quiz.

The service's task list of a split (``get_env_profile``) becomes the tasks, one per entry:

=================  =========================================================================
``task_id``        the entry (a task id, as text), or the entry's ``task_id`` when the
                   service lists records (objects) instead of plain ids
``main_query``     ``"[not defined]"``, unless a record carries a ``main_query``
``init_messages``  ``[]`` here; the rollout runner fills them from the instance it creates
                   for each rollout (the instance's first observation)
``env_type``       ``task_reader.env_service.env_type``
``metadata``       ``{}``, or a record's ``metadata``
=================  =========================================================================

The list is requested when tasks are asked for, never when the reader is built. An unreachable
service, an empty split or a malformed list is a :class:`TaskReaderError` naming the URL, the
environment and the split. An empty ``validation_split`` means "no validation tasks".

Not guaranteed: the service is assumed to list the same tasks every time it is asked; task ids
are not checked against what ``create`` later accepts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from astuner.env_service import EnvClient, EnvServiceError, client_from_config
from astuner.schema import Task
from astuner.task_reader.base import TaskReader, TaskReaderError

if TYPE_CHECKING:
    from astuner.config.schema_task import EnvServiceConfig

NOT_DEFINED = "[not defined]"


class EnvServiceTaskReader(TaskReader):
    """Reads the training and validation task lists of ``env_type`` from one service."""

    def __init__(self, client: EnvClient, env_type: str, training_split: str = "train", validation_split: str = "dev") -> None:
        if not env_type:
            raise TaskReaderError("task_reader.env_service.env_type is empty")
        self.client = client
        self.env_type = env_type
        self.training_split = training_split or ""
        self.validation_split = validation_split or ""

    def get_training_tasks(self) -> list[Task]:
        if not self.training_split:
            raise TaskReaderError("no training split: task_reader.env_service.training_split is empty")
        return self.load_split(self.training_split)

    def get_validation_tasks(self) -> list[Task]:
        if not self.validation_split:
            return []
        return self.load_split(self.validation_split)

    def load_split(self, split: str) -> list[Task]:
        """Ask the service for one split's tasks."""
        where = f"env service {self.client.base_url} (env_type {self.env_type!r}, split {split!r})"
        try:
            entries = self.client.get_env_profile(self.env_type, split)
        except EnvServiceError as exc:
            raise TaskReaderError(f"cannot read tasks: {exc}") from exc
        if not entries:
            raise TaskReaderError(f"{where} lists no tasks")
        tasks = [self._task(entry, index, where) for index, entry in enumerate(entries)]
        seen: set[str] = set()
        for task in tasks:
            if task.task_id in seen:
                raise TaskReaderError(f"{where} lists task {task.task_id!r} twice")
            seen.add(task.task_id)
        return tasks

    def _task(self, entry: Any, index: int, where: str) -> Task:
        if isinstance(entry, (str, int)) and not isinstance(entry, bool):
            return Task(task_id=str(entry), main_query=NOT_DEFINED, env_type=self.env_type, metadata={})
        if isinstance(entry, dict) and isinstance(entry.get("task_id"), (str, int)):
            metadata = entry.get("metadata") or {}
            query = entry.get("main_query")
            if not isinstance(metadata, dict) or not isinstance(query, (str, type(None))):
                raise TaskReaderError(f"{where}: entry {index}: 'main_query' must be text and 'metadata' an object")
            return Task(task_id=str(entry["task_id"]), main_query=query or NOT_DEFINED, env_type=self.env_type, metadata=metadata)
        raise TaskReaderError(f"{where}: entry {index} is {entry!r}; expected a task id or an object with 'task_id'")


def env_service_reader(block: EnvServiceConfig) -> EnvServiceTaskReader:
    """The reader for the ``task_reader.env_service`` block; a malformed ``env_url`` is a ``TaskReaderError``."""
    try:
        client = client_from_config(block)
    except ValueError as exc:
        raise TaskReaderError(f"task_reader.env_service.env_url: {exc}") from exc
    return EnvServiceTaskReader(client, block.env_type, block.training_split, block.validation_split)
