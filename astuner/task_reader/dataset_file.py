"""Tasks from local files (``type: jsonl_dataset_file``, seed-era alias ``dataset_file``).

Two formats, chosen by extension:

- ``.jsonl``: one JSON object per line; blank lines are skipped;
- ``.parquet``: one task per row (read with pyarrow).

Each record maps to a task field by field; a field that is absent or null takes its default:

=================  ==========================================================================
``main_query``     the ``question`` field when there is no ``main_query`` (GSM8K-style files);
                   ``""`` when the record has non-empty ``init_messages`` (the workflow starts
                   from those); otherwise an error naming the line
``init_messages``  ``[]``
``task_id``        the record's index in the file (0-based, blank lines not counted), as a string
``env_type``       ``"no_env"``
``metadata``       the whole record, so a judge can read any extra field (e.g. ``answer``)
=================  ==========================================================================

An empty validation path yields no validation tasks (``[]``) rather than reusing the training
tasks: whether to evaluate on training data is the caller's decision, not the reader's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from astuner.schema import Task
from astuner.task_reader.base import TaskReader, TaskReaderError

SUPPORTED_SUFFIXES = (".jsonl", ".parquet")


class DatasetFileTaskReader(TaskReader):
    """Reads training and validation tasks from one file each (``task_reader.jsonl_dataset_file``)."""

    def __init__(self, training_path: str = "", validation_path: str = "") -> None:
        self.training_path = training_path or ""
        self.validation_path = validation_path or ""

    def get_training_tasks(self) -> list[Task]:
        if not self.training_path:
            raise TaskReaderError(
                "no training file: task_reader.jsonl_dataset_file.training.file_path is empty"
            )
        return read_task_file(self.training_path)

    def get_validation_tasks(self) -> list[Task]:
        if not self.validation_path:
            return []
        return read_task_file(self.validation_path)


def read_task_file(path: str | Path) -> list[Task]:
    """Read every task of a ``.jsonl`` or ``.parquet`` file; at least one task must be there."""
    file = Path(path).expanduser()
    if not file.exists():
        raise TaskReaderError(f"task file not found: {file}")
    if not file.is_file():
        raise TaskReaderError(f"task file is not a regular file: {file}")
    suffix = file.suffix.lower()
    if suffix == ".jsonl":
        records = _jsonl_records(file)
    elif suffix == ".parquet":
        records = _parquet_records(file)
    else:
        raise TaskReaderError(
            f"unsupported task file type {suffix or '(no extension)'!r} for {file}; "
            f"use one of {', '.join(SUPPORTED_SUFFIXES)}"
        )
    tasks = [record_to_task(record, index, where) for index, (where, record) in enumerate(records)]
    if not tasks:
        raise TaskReaderError(f"no tasks in {file}")
    return tasks


def record_to_task(record: Any, index: int, where: str) -> Task:
    """Map one record to a task with the defaults in this module's docstring.

    ``where`` locates the record (``file.jsonl:12`` or ``file.parquet row 11``) for error messages.
    """
    if not isinstance(record, dict):
        raise TaskReaderError(f"{where}: expected a JSON object, got {type(record).__name__}")
    init_messages = _field(record, "init_messages", [])
    main_query = _field(record, "main_query", None)
    if main_query is None:
        main_query = _field(record, "question", None)
    if main_query is None:
        if not (isinstance(init_messages, list) and init_messages):
            raise TaskReaderError(
                f"{where}: no 'main_query' or 'question' field (and no init_messages); "
                f"fields: {sorted(record)}"
            )
        main_query = ""
    task_id = _field(record, "task_id", str(index))
    if isinstance(task_id, int) and not isinstance(task_id, bool):
        task_id = str(task_id)
    try:
        return Task(
            task_id=task_id,
            main_query=main_query,
            init_messages=init_messages,
            env_type=_field(record, "env_type", "no_env"),
            metadata=_field(record, "metadata", dict(record)),
        )
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(part) for part in error["loc"])
        raise TaskReaderError(f"{where}: field {field!r}: {error['msg']}") from exc


def _field(record: dict, key: str, default: Any) -> Any:
    value = record.get(key)
    return default if value is None else value


def _jsonl_records(file: Path) -> list[tuple[str, Any]]:
    records = []
    try:
        with file.open(encoding="utf-8") as handle:
            for line_number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    records.append((f"{file}:{line_number}", json.loads(line)))
                except json.JSONDecodeError as exc:
                    raise TaskReaderError(
                        f"{file}:{line_number}: invalid JSON ({exc.msg} at column {exc.colno})"
                    ) from exc
    except UnicodeDecodeError as exc:
        raise TaskReaderError(f"{file}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except OSError as exc:
        raise TaskReaderError(f"cannot read task file {file}: {exc.strerror or exc}") from exc
    return records


def _parquet_records(file: Path) -> list[tuple[str, Any]]:
    import pyarrow.parquet as pq

    try:
        rows = pq.read_table(file).to_pylist()
    except Exception as exc:
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise TaskReaderError(f"cannot read parquet file {file}: {first_line}") from exc
    return [(f"{file} row {index}", row) for index, row in enumerate(rows)]
