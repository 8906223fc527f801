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
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from astuner.task_reader.base import TaskReader, TaskReaderError
from astuner.task_reader.dataset_file import DatasetFileTaskReader, read_task_file
from astuner.task_reader.env_service import EnvServiceTaskReader, env_service_reader
from astuner.task_reader.gsm8k import gsm8k_reference
from astuner.task_reader.hf_dataset import HuggingFaceTaskReader
from astuner.task_reader.random_dummy import RandomDummyTaskReader
from astuner.task_reader.shuffle import ShuffledTaskReader

if TYPE_CHECKING:
    from astuner.config.schema_task import HuggingfaceDatRepoConfig, JsonlDatasetFileConfig, TaskReaderConfig

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


def build_task_reader(reader_cfg: TaskReaderConfig, seed: int = 42, shuffle: bool = True) -> TaskReader:
    """Build the reader that ``reader_cfg`` (the ``astuner.task_reader`` block) describes.

    With ``shuffle`` (the default) both task lists are shuffled by ``random.Random(seed)``: the same
    seed gives the same order every time, and the global ``random`` state is untouched. With
    ``shuffle=False`` tasks keep their source order (row / line order). A type no reader here
    implements is a ``TaskReaderError`` naming the valid ones.
    """
    reader_type = reader_cfg.type
    if reader_type == "huggingface_dat_repo":
        reader: TaskReader = _build_hf(reader_cfg.huggingface_dat_repo)
    elif reader_type in ("jsonl_dataset_file", "dataset_file"):
        reader = _build_dataset_file(reader_cfg.jsonl_dataset_file)
    elif reader_type == "random_dummy":
        reader = RandomDummyTaskReader()
    elif reader_type == "env_service":
        reader = env_service_reader(reader_cfg.env_service)
    else:
        raise TaskReaderError(
            f"unknown task_reader.type {reader_type!r}; valid types: {', '.join(VALID_TYPES)}"
        )
    return ShuffledTaskReader(reader, seed) if shuffle else reader


def _build_hf(block: HuggingfaceDatRepoConfig) -> HuggingFaceTaskReader:
    return HuggingFaceTaskReader(
        dataset_path=block.dataset_path,
        dataset_name=block.dataset_name or None,
        training_split=block.training_split,
        validation_split=block.validation_split,
    )


def _build_dataset_file(block: JsonlDatasetFileConfig) -> DatasetFileTaskReader:
    """The JSONL/parquet reader; a block that names no file at all is an error when the reader is built."""
    training = block.training.file_path
    validation = block.validation.file_path
    if not training and not validation:
        raise TaskReaderError("task_reader.jsonl_dataset_file.training.file_path is empty (no task file configured)")
    return DatasetFileTaskReader(training, validation)
