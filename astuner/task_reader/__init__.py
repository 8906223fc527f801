"""Task readers: turn the ``task_reader`` config block into training and validation tasks.

``build_task_reader(cfg)`` picks a reader by ``cfg.type``:

========================  ====================================================================
``huggingface_dat_repo``  a Hugging Face dataset, local directory or Hub id (``hf_dataset.py``)
``jsonl_dataset_file``    ``.jsonl`` / ``.parquet`` files (``dataset_file.py``); ``dataset_file``
                          is the seed-era name for the same reader
``random_dummy``          1000 placeholder tasks (``random_dummy.py``)
``env_service``           the task list of an environment service over HTTP (``env_service.py``)
========================  ====================================================================

Building a reader only checks the config; files, datasets and services are read when tasks are
asked for, and every failure is a :class:`TaskReaderError`.

The config may be the pydantic ``task_reader`` model from ``astuner.config`` or a plain dict with
the same keys (handy in tests and scripts).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from astuner.task_reader.base import TaskReader, TaskReaderError
from astuner.task_reader.dataset_file import DatasetFileTaskReader, read_task_file
from astuner.task_reader.env_service import EnvServiceTaskReader, env_service_reader
from astuner.task_reader.gsm8k import gsm8k_reference
from astuner.task_reader.hf_dataset import HuggingFaceTaskReader
from astuner.task_reader.random_dummy import RandomDummyTaskReader
from astuner.task_reader.shuffle import ShuffledTaskReader

__all__ = [
    "DatasetFileTaskReader",
    "EnvServiceTaskReader",
    "HuggingFaceTaskReader",
    "RandomDummyTaskReader",
    "ShuffledTaskReader",
    "TaskReader",
    "TaskReaderError",
    "VALID_TYPES",
    "build_task_reader",
    "gsm8k_reference",
    "read_task_file",
]

VALID_TYPES = ("huggingface_dat_repo", "jsonl_dataset_file", "dataset_file", "random_dummy", "env_service")


def build_task_reader(reader_cfg: Any, seed: int = 42, shuffle: bool = True) -> TaskReader:
    """Build the reader that ``reader_cfg`` (the ``task_reader`` block) describes.

    With ``shuffle`` (the default) both task lists are shuffled by ``random.Random(seed)``: the same
    seed gives the same order every time, and the global ``random`` state is untouched. With
    ``shuffle=False`` tasks keep their source order (row / line order).
    """
    if reader_cfg is None:
        raise TaskReaderError("task_reader config is missing")
    reader_type = _get(reader_cfg, "type")
    if reader_type == "huggingface_dat_repo":
        reader: TaskReader = _build_hf(_get(reader_cfg, "huggingface_dat_repo"))
    elif reader_type in ("jsonl_dataset_file", "dataset_file"):
        reader = _build_dataset_file(reader_cfg, reader_type)
    elif reader_type == "random_dummy":
        reader = RandomDummyTaskReader()
    elif reader_type == "env_service":
        reader = env_service_reader(_get(reader_cfg, "env_service"))
    else:
        raise TaskReaderError(
            f"unknown task_reader.type {reader_type!r}; valid types: {', '.join(VALID_TYPES)}"
        )
    return ShuffledTaskReader(reader, seed) if shuffle else reader


def _build_hf(block: Any) -> HuggingFaceTaskReader:
    if block is None:
        raise TaskReaderError("task_reader.huggingface_dat_repo is missing (needs dataset_path)")
    return HuggingFaceTaskReader(
        dataset_path=_get(block, "dataset_path") or "",
        dataset_name=_get(block, "dataset_name") or None,
        training_split=_get(block, "training_split", "train"),
        validation_split=_get(block, "validation_split", "validation"),
    )


def _build_dataset_file(reader_cfg: Any, reader_type: str) -> DatasetFileTaskReader:
    """Use the first of the two same-shaped blocks that names a file, the one matching ``type`` first.

    The block was renamed from ``dataset_file`` to ``jsonl_dataset_file`` upstream; configs of
    either era set only one of them, and a typed config may fill the other with empty defaults.
    """
    other = "dataset_file" if reader_type == "jsonl_dataset_file" else "jsonl_dataset_file"
    for key in (reader_type, other):
        block = _get(reader_cfg, key)
        training = _get(_get(block, "training"), "file_path") or ""
        validation = _get(_get(block, "validation"), "file_path") or ""
        if training or validation:
            return DatasetFileTaskReader(str(training), str(validation), config_key=key)
    raise TaskReaderError(f"task_reader.{reader_type}.training.file_path is empty (no task file configured)")


def _get(obj: Any, key: str, default: Any = None) -> Any:
    """``obj.key`` or ``obj[key]``; ``default`` when ``obj`` is None or lacks the key."""
    if obj is None:
        return default
    if isinstance(obj, Mapping):
        return obj.get(key, default)
    return getattr(obj, key, default)
