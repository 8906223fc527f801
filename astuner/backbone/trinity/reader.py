"""astuner's task reader as a Trinity-RFT 0.6.0 buffer reader (``storage_type: astuner``).

Trinity asks its ``READER`` registry for the taskset's ``storage_type`` and builds the reader with
the taskset's ``StorageConfig``. This reader loads the run's astuner config (the taskset's ``path``
is ``yaml_backup.yaml``; ``$ASTUNER_CONFIG_REDIRECT`` when the path is empty), builds the configured
astuner task reader (seeded shuffle included) and serves its training tasks (``split`` containing
"train") or validation tasks (``split`` containing "val"; both when it contains both). Each task
becomes a Trinity ``Task`` through Trinity's own task formatter, with the astuner task as
``raw_task`` (``task_id``, ``main_query``, ``init_messages``, ``env_type``, ``metadata``).

Batching follows Trinity's file reader: ``batch_size`` tasks per ``read()``; training runs
``total_epochs`` passes (or ``total_steps`` batches), drops a last partial batch and resumes from
``index`` (Trinity's checkpointed position); validation is one pass, last partial batch kept.
``read()`` raises ``StopAsyncIteration`` when done.
"""

from __future__ import annotations

from typing import Any

from trinity.buffer.buffer_reader import BufferReader
from trinity.buffer.schema import FORMATTER
from trinity.common.config import StorageConfig

from astuner.backbone.trinity.worker import config_path, load_astuner_config, tasks_for_split


class AstunerTaskReader(BufferReader):
    """Serves astuner's tasks to Trinity's explorer (see the module docstring)."""

    def __init__(self, config: StorageConfig) -> None:
        """``config`` is the taskset's Trinity ``StorageConfig`` (Trinity's reader contract); the astuner
        config it points at is loaded here, once per reader."""
        path = config.path if str(config.path or "").endswith((".yaml", ".yml")) else None
        args = config.workflow_args or {}
        self.config = config
        self.astuner_config = load_astuner_config(config_path(path or args.get("astuner_config")),
                                                  args.get("astuner_launch_dir"))
        self.rows = tasks_for_split(self.astuner_config, config.split)
        if not self.rows:
            raise ValueError(f"astuner taskset {config.name!r} (split {config.split!r}) has no tasks")
        self.formatter = FORMATTER.get("task")(config)
        self.batch_size = max(1, int(config.batch_size or 1))
        self.is_eval = bool(config.is_eval)
        self.offset = 0 if self.is_eval else int(config.index or 0)
        if self.is_eval:
            self.total = len(self.rows)
        elif config.total_steps:
            self.total = self.batch_size * int(config.total_steps)
        else:
            self.total = len(self.rows) * int(config.total_epochs or 1)

    def __len__(self) -> int:
        return len(self.rows)

    def _next_batch(self, batch_size: int) -> list[tuple[int, dict]]:
        batch = []
        while len(batch) < batch_size:
            if self.offset >= self.total:
                if self.is_eval and batch:
                    break
                raise StopAsyncIteration
            index = self.offset % len(self.rows)
            batch.append((index, self.rows[index]))
            self.offset += 1
        return batch

    async def read(self, batch_size: int | None = None, **kwargs: Any) -> list:
        tasks = []
        for index, row in self._next_batch(batch_size or self.batch_size):
            task = self.formatter.format(dict(row))
            task.index["index"] = index
            tasks.append(task)
        return tasks

    def state_dict(self) -> dict:
        return {"current_index": self.offset}

    def load_state_dict(self, state_dict: dict) -> None:
        self.offset = int(state_dict.get("current_index", 0))

    def feedback(self, **kwargs: Any) -> None:
        """Trinity's task selectors send feedback; astuner's reader reads tasks in order, so it ignores it."""
