"""``<exp_dir>/tracker_ids.json``: the tracker run ids of one experiment, so a resumed run continues them.

A run that resumes (the local backbone, same experiment folder) reuses the id stored here for
each tracker, so wandb, swanlab and mlflow show one continuous run instead of one per launch. A
fresh run in the folder (``local.resume_mode: disable`` with a fixed ``experiment_name``) gets new
ids, which replace the stored ones. The file is one JSON object, tracker name -> id, written
atomically (temporary file, then rename) each time an id is stored.

Not guaranteed: that the tracker still knows a stored id (a deleted run, another wandb entity,
another ``MLFLOW_TRACKING_URI``); each tracker then does what its resume mode does (wandb and
swanlab start a run under that id; mlflow raises). A file that is not a JSON object is ignored
(with a warning) and rewritten.
"""

from __future__ import annotations

import json
import os
import secrets
import string
import warnings
from pathlib import Path

IDS_FILE = "tracker_ids.json"
_ALPHABET = string.ascii_lowercase + string.digits


def new_run_id() -> str:
    """A random run id of 21 lowercase letters and digits: valid for wandb (up to 64 of these) and
    for swanlab (whose older releases require exactly 21)."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(21))


class RunIds:
    """The stored ids of one experiment folder; ``resume`` says whether stored ids may be reused."""

    def __init__(self, exp_dir: Path, *, resume: bool) -> None:
        self.path = Path(exp_dir) / IDS_FILE
        self.resume = resume
        self._ids = self._read()

    def get(self, tracker: str) -> str | None:
        """The id to continue for ``tracker``: the stored one when resuming, else None (a new run)."""
        return self._ids.get(tracker) if self.resume else None

    def store(self, tracker: str, run_id: str) -> None:
        """Remember ``run_id`` for ``tracker`` (written at once, so a crash right after keeps it)."""
        self._ids[tracker] = run_id
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self._ids, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(tmp, self.path)

    def _read(self) -> dict[str, str]:
        if not self.path.is_file():
            return {}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            warnings.warn(f"metrics: {self.path.name} unreadable ({exc}); trackers start new runs", stacklevel=3)
            return {}
        if not isinstance(data, dict):
            warnings.warn(f"metrics: {self.path.name} is not a JSON object; trackers start new runs", stacklevel=3)
            return {}
        return {str(k): str(v) for k, v in data.items() if isinstance(v, str)}
