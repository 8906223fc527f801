"""Relative input paths of a config file resolve against the file's own folder.

So that a config works from any working directory, the input paths it names are read relative
to the folder of the YAML file, not to wherever ``astuner`` was started. The keys concerned:

==========================================================  =========================================
``task_reader.jsonl_dataset_file.{training,validation}``    task files (``file_path``)
``rollout.engine.scripted.path``                            the scripted replies
``rollout.agentscope_workflow``, ``task_judge.judge_protocol``  the ``path/file.py`` of the file form
``task_reader.huggingface_dat_repo.dataset_path``           a local dataset folder (else a Hub id)
``model.path``                                              a local model folder (else a Hub id)
==========================================================  =========================================

The rule for a relative value ``p`` written in the file: ``<config folder>/p`` if it exists;
otherwise ``<working directory>/p`` if that exists — the seed-era rule, kept so that configs
written for the repository root keep working from there — with a note saying so; otherwise the
value is left as written (a Hub id, or a missing file that ``missing`` reports). A model or dataset
path that cannot be a Hub id (``could_be_hub_id``: not ``name`` or ``org/name``) must exist. A value that was
found is replaced by its absolute path, so ``yaml_backup.yaml`` and every later process read the
same file. A value given as a command-line override is relative to the working directory only,
as any shell argument. Absolute paths, ``~`` paths (expanded) and ``scheme://`` values are taken
as they are. Dotted ``module->Class`` names are not paths: they are imported from ``sys.path``
(``astuner.resolve``).

Not guaranteed: that a found path is readable or well-formed (the caller's checks do that), or
that a value left as written is a valid Hub id.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path

from astuner.config.schema import AstunerConfig

SPEC_SEPARATOR = "->"

KeyPath = tuple[str, ...]
"""A key path below the ``astuner`` root, e.g. ``("rollout", "engine", "scripted", "path")``."""


@dataclass(frozen=True)
class PathKey:
    """One config key that holds an input path.

    ``required`` says when the path must exist (the part of the config that reads it is in use);
    ``spec`` marks a ``module->Class`` value whose module part may be a ``.py`` path.
    """

    key: KeyPath
    required: Callable[[AstunerConfig], bool]
    spec: bool = False


def could_be_hub_id(value: str) -> bool:
    """Whether ``value`` has the form of a Hugging Face Hub id (``name`` or ``org/name``). Any other
    form (absolute, ``./``, ``../``, ``~``, two or more ``/``) can only be a local folder, which must exist."""
    v = (value or "").strip()
    return bool(v) and not v.startswith(("/", ".", "~")) and v.count("/") <= 1 and "\\" not in v


def _uses_task_files(a: AstunerConfig) -> bool:
    return a.task_reader.type == "jsonl_dataset_file"


PATH_KEYS: tuple[PathKey, ...] = (
    PathKey(("task_reader", "jsonl_dataset_file", "training", "file_path"), _uses_task_files),
    PathKey(("task_reader", "jsonl_dataset_file", "validation", "file_path"), _uses_task_files),
    PathKey(("rollout", "engine", "scripted", "path"), lambda a: a.rollout.engine.type == "scripted"),
    PathKey(("rollout", "agentscope_workflow"), lambda a: True, spec=True),
    PathKey(("task_judge", "judge_protocol"), lambda a: True, spec=True),
    PathKey(("task_reader", "huggingface_dat_repo", "dataset_path"),
            lambda a: a.task_reader.type == "huggingface_dat_repo" and not could_be_hub_id(a.task_reader.huggingface_dat_repo.dataset_path)),
    PathKey(("model", "path"), lambda a: not could_be_hub_id(a.model.path)),
)


@dataclass(frozen=True)
class PathBases:
    """Where relative paths are looked up: the config file's folder, then the working directory."""

    config_dir: Path
    cwd: Path


@dataclass(frozen=True)
class MissingPath:
    """A path the config needs that exists nowhere it was looked for."""

    key: KeyPath
    value: str
    tried: tuple[Path, ...]

    def message(self) -> str:
        tried = " and ".join(str(p) for p in self.tried)
        return f"file not found: {self.value!r} (tried {tried})"


@dataclass
class PathReport:
    """What resolving did: notes for the user (cwd fallbacks) and required paths that are missing."""

    notes: list[tuple[KeyPath, str]] = field(default_factory=list)
    missing: list[MissingPath] = field(default_factory=list)


def resolve_paths(a: AstunerConfig, bases: PathBases, from_overrides: Collection[KeyPath] = ()) -> PathReport:
    """Replace the relative input paths of ``a`` (in place) by the absolute paths they name.

    ``from_overrides`` are the key paths (below ``astuner``) set on the command line, or a block
    above them; their values are relative to the working directory only.
    """
    report = PathReport()
    for entry in PATH_KEYS:
        value = _get(a, entry.key)
        if not isinstance(value, str) or not value:
            continue
        head, sep, attr = value.partition(SPEC_SEPARATOR) if entry.spec else (value, "", "")
        if entry.spec and (not head.strip().endswith(".py") or SPEC_SEPARATOR in attr):
            continue  # a dotted name (or a malformed spec, which resolving reports)
        path_text = head.strip()
        if "://" in path_text:
            continue
        overridden = any(entry.key[: len(k)] == k for k in from_overrides)
        found, tried, note = _find(path_text, bases, overridden)
        if found is not None:
            _set(a, entry.key, f"{found}{sep}{attr.strip()}" if entry.spec else str(found))
            if note:
                report.notes.append((entry.key, note))
        elif entry.required(a):
            report.missing.append(MissingPath(entry.key, path_text, tried))
    return report


def _find(text: str, bases: PathBases, overridden: bool) -> tuple[Path | None, tuple[Path, ...], str]:
    """(the existing path ``text`` names or None, the candidates tried, a note about a cwd fallback)."""
    path = Path(text).expanduser()
    if path.is_absolute():
        return (path if path.exists() else None), (path,), ""
    if overridden:
        candidate = bases.cwd / path
        return (candidate if candidate.exists() else None), (candidate,), ""
    near_config, in_cwd = bases.config_dir / path, bases.cwd / path
    if near_config.exists():
        return near_config, (near_config,), ""
    if in_cwd == near_config:
        return None, (near_config,), ""
    if in_cwd.exists():
        note = (
            f"{text!r} is not in the config's folder ({bases.config_dir}); using {in_cwd} from the working "
            "directory (write paths relative to the config file, or absolute, to run from anywhere)"
        )
        return in_cwd, (near_config, in_cwd), note
    return None, (near_config, in_cwd), ""


def _get(a: AstunerConfig, key: KeyPath) -> object:
    node: object = a
    for part in key:
        node = getattr(node, part)
    return node


def _set(a: AstunerConfig, key: KeyPath, value: str) -> None:
    node: object = a
    for part in key[:-1]:
        node = getattr(node, part)
    setattr(node, key[-1], value)
