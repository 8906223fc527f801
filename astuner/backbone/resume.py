"""Which folder a launch writes to: a new run, or the unfinished run the local backbone resumes.

Chosen before anything is created, so a launch names one experiment from its first line to its
last, the resumed run's own name when it resumes. Only ``--backbone=local`` with
``local.resume_mode: auto`` resumes:

1. the folder of this launch's own name holds a complete checkpoint (a named run, or a rerun
   within the same minute): that run continues;
2. otherwise, when the name is derived from the config file (``experiment_name`` empty or
   ``read_yaml_name``: ``<yaml stem>_<YYYYmmdd_HHMM>``), the newest sibling folder named exactly
   ``<yaml stem>_<YYYYmmdd_HHMM>`` that holds a complete checkpoint and no ``DONE`` marker;
3. otherwise a new run under this launch's name.

Not guaranteed: that the resumed run was started from the same config (only the file name and
the ``--exp-dir`` match), or from the same file (two configs with one name share runs).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from astuner.backbone.checkpoint import DONE_MARKER, latest_checkpoint
from astuner.config.loader import DERIVE_NAME, experiment_name
from astuner.config.schema import Config

_STAMP = re.compile(r"_\d{8}_\d{4}$")


@dataclass(frozen=True)
class RunChoice:
    """The run's name and folder (not created yet), and the checkpoint it resumes from, if any."""

    name: str
    directory: Path
    resume_from: Path | None


def choose_run(cfg: Config, conf_path: str | Path, exp_root: Path) -> RunChoice:
    """The run this launch writes to, by the rules in the module docstring; creates nothing."""
    name = experiment_name(cfg, conf_path)
    own = exp_root / name
    a = cfg.astuner
    if a.backbone != "local" or a.local.resume_mode != "auto":
        return RunChoice(name, own, None)
    checkpoint = latest_checkpoint(own)
    if checkpoint is not None:
        return RunChoice(name, own, checkpoint)
    if a.experiment_name not in ("", DERIVE_NAME) or not _STAMP.search(name):
        return RunChoice(name, own, None)
    stem = _STAMP.sub("", name)
    siblings = sorted(
        (p for p in _children(exp_root) if _STAMP.sub("", p.name) == stem and _STAMP.search(p.name)),
        key=lambda p: p.name,
        reverse=True,
    )
    for candidate in siblings:
        checkpoint = latest_checkpoint(candidate)
        if checkpoint is not None and not (candidate / DONE_MARKER).exists():
            return RunChoice(candidate.name, candidate, checkpoint)
    return RunChoice(name, own, None)


def _children(root: Path) -> list[Path]:
    return [p for p in root.iterdir() if p.is_dir()] if root.is_dir() else []
