"""Tasks from a Hugging Face dataset (``type: huggingface_dat_repo``), such as GSM8K.

``dataset_path`` is either a local directory in Hugging Face layout or a Hub repo id; it is handed
to ``datasets.load_dataset`` as is, so a local directory is read without any Hub request (this
also works with ``HF_HUB_OFFLINE=1``).

``dataset_name`` null or empty (the default) means "the config the data has": the dataset's own
default config when it has one (a single config, or one its card marks default); for a dataset
with several configs and no default, such as the GSM8K repository (``main`` and ``socratic``), the
first config the dataset lists, with a note on stderr naming it and the others. So both GSM8K
layouts work without a ``dataset_name``: the repository root (``.../gsm8k``, read as ``main``) and
one config's folder (``.../gsm8k/main``, as upstream's YAML points at). A named config must exist:
``main`` on a config's folder is an error listing what the folder has (``default``). When the
configs cannot be listed (a Hub id with the Hub unreachable), loading goes on without a name and
reports the load's own error.

Each row becomes one task: ``task_id`` is the row index, ``main_query`` the ``question`` column,
and the whole row is kept as ``metadata`` so a judge can read the reference (``metadata["answer"]``
for GSM8K). A dataset without a ``question`` column is an error rather than a set of tasks that
all ask "Empty" (upstream's silent default).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from astuner.schema import Task
from astuner.task_reader.base import TaskReader, TaskReaderError

DOWNLOAD_HINT = "scripts/download_dataset.py"


class HuggingFaceTaskReader(TaskReader):
    """Reads the training and validation splits of one dataset (and config) with ``datasets``.

    An empty ``validation_split`` means "no validation set" and yields ``[]``; an empty
    ``training_split`` is an error when training tasks are asked for.
    """

    def __init__(
        self,
        dataset_path: str,
        dataset_name: str | None = None,
        training_split: str = "train",
        validation_split: str = "validation",
    ) -> None:
        if not dataset_path:
            raise TaskReaderError("task_reader.huggingface_dat_repo.dataset_path is empty")
        self.dataset_path = dataset_path
        self.dataset_name = dataset_name or ""
        self._chosen: str | None = None
        self._chose = False
        self.training_split = training_split or ""
        self.validation_split = validation_split or ""

    def get_training_tasks(self) -> list[Task]:
        if not self.training_split:
            raise TaskReaderError(
                f"no training split for dataset {self.dataset_path!r}: "
                "task_reader.huggingface_dat_repo.training_split is empty"
            )
        return self.load_split(self.training_split)

    def get_validation_tasks(self) -> list[Task]:
        if not self.validation_split:
            return []
        return self.load_split(self.validation_split)

    def load_split(self, split: str) -> list[Task]:
        """Load one split and map its rows to tasks."""
        rows, columns = self._load_rows(split)
        where = self._describe(split)
        if "question" not in columns:
            raise TaskReaderError(
                f"{where} has no 'question' column to use as main_query; columns: {sorted(columns)}"
            )
        tasks = []
        for index, row in enumerate(rows):
            question = row["question"]
            if not isinstance(question, str):
                raise TaskReaderError(
                    f"{where} row {index}: 'question' is {type(question).__name__}, not a string"
                )
            tasks.append(
                Task(
                    task_id=str(index),
                    main_query=question,
                    init_messages=[],
                    env_type="no_env",
                    metadata=dict(row),
                )
            )
        if not tasks:
            raise TaskReaderError(f"{where} has no rows")
        return tasks

    def _load_rows(self, split: str) -> tuple[list[dict], list[str]]:
        path = os.path.expanduser(self.dataset_path)
        if _looks_local(self.dataset_path) and not Path(path).exists():
            raise TaskReaderError(f"dataset directory {path!r} does not exist ({self._describe(split)})")
        try:
            import datasets

            dataset = datasets.load_dataset(path, self.config_name(), split=split)
        except Exception as exc:
            raise TaskReaderError(self._load_failure(split, exc)) from exc
        return dataset.to_list(), list(dataset.column_names)

    def config_name(self) -> str | None:
        """The config to load: ``dataset_name``, else the one chosen for the data (module docstring), once."""
        if self.dataset_name:
            return self.dataset_name
        if not self._chose:
            self._chosen = choose_config(os.path.expanduser(self.dataset_path))
            self._chose = True
        return self._chosen

    def _describe(self, split: str) -> str:
        config = self.dataset_name or self._chosen or "default"
        return f"Hugging Face dataset {self.dataset_path!r} (config {config}, split {split!r})"

    def _load_failure(self, split: str, exc: Exception) -> str:
        message = f"cannot load {self._describe(split)}: {_summary(exc)}"
        reason = hub_unreachable_reason(exc)
        if reason:
            message += (
                f"; {reason}: download it first with `python {DOWNLOAD_HINT} "
                f"--target={self.dataset_path} --path=DIR` and point dataset_path at DIR"
            )
        return message


def choose_config(path: str) -> str | None:
    """The config to load when none is named: None (``datasets`` picks the dataset's default) unless the
    dataset has several configs and no default; then the first it lists, with a note on stderr."""
    import datasets

    try:
        names = list(datasets.get_dataset_config_names(path))
        default = datasets.get_dataset_default_config_name(path)
    except Exception:  # e.g. a Hub id without network: loading reports why
        return None
    if default is not None or len(names) <= 1:
        return None
    others = ", ".join(names[1:])
    print(
        f"astuner: note: task_reader.huggingface_dat_repo: dataset {path!r} has configs {names[0]}, {others} and no "
        f"default; using {names[0]!r} (set dataset_name to choose another)",
        file=sys.stderr,
    )
    return names[0]


def hub_unreachable_reason(exc: BaseException) -> str | None:
    """Say why the Hugging Face Hub could not be reached, if that is what ``exc`` means.

    ``datasets`` and ``huggingface_hub`` report offline mode and network failures through several
    exception types (``ConnectionError``, ``OfflineModeIsEnabled``, ``LocalEntryNotFoundError``
    wrapping an httpx error), so the whole cause chain is inspected by type name and text.
    """
    offline_reason = "Hugging Face offline mode is on (HF_HUB_OFFLINE=1) and this is not a local dataset"
    offline = _env_flag("HF_HUB_OFFLINE") or _env_flag("HF_DATASETS_OFFLINE")
    for link in _chain(exc):
        name = type(link).__name__
        text = str(link)
        if name == "OfflineModeIsEnabled" or "OfflineModeIsEnabled" in text:
            return offline_reason
        if "outgoing traffic has been disabled" in text:
            return offline_reason
        network = isinstance(link, ConnectionError) or name in {"ConnectError", "ConnectTimeout"}
        if network or "internet connection" in text:
            return offline_reason if offline else "the Hugging Face Hub cannot be reached (no network?)"
    return None


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and its causes/contexts, outermost first, without looping."""
    seen: list[BaseException] = []
    link: BaseException | None = exc
    while link is not None and all(link is not s for s in seen):
        seen.append(link)
        link = link.__cause__ or link.__context__
    return seen


def _summary(exc: BaseException) -> str:
    """The first line of an error, plus a line listing available configs when ``datasets`` gave one."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    summary = f"{type(exc).__name__}: {lines[0]}"
    hint = next((line for line in lines[1:] if "available" in line.lower()), None)
    if hint:
        summary += f" ({hint})"
    return summary


def _looks_local(dataset_path: str) -> bool:
    """True for paths that cannot be Hub repo ids: absolute, ``./``, ``../`` or ``~``."""
    return dataset_path.startswith(("/", ".", "~")) or os.path.isabs(dataset_path)


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}
