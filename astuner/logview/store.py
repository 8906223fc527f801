"""What the log viewer reads from disk: experiments, their rollouts, metrics and curve.

An *experiment* is a directory under the viewer's root that has ``rollouts/`` or ``metrics.jsonl``
(the root itself counts too, named ``"."``, so a single run's directory can be browsed). Every
name that arrives from a request is checked before it touches the filesystem: experiment names
are single path components of a directory under the root, rollout files are ``*.jsonl`` names
directly inside ``rollouts/``, and every resolved path must still lie under the root, so ``..``,
absolute paths and symlinks that point outside are refused (``NotFound``).

Rollout files are indexed once and then incrementally: each request re-reads only the bytes
appended since the last one, so a file that a running job appends to stays cheap to poll and new
rollouts appear as they are written. A line without its trailing newline (a write in progress) is
left for the next request. A file that shrank, or whose last indexed line changed, is re-indexed
from the start.

Not guaranteed: a file rewritten in place to the same length with different content between two
requests may be served from stale offsets until it changes size; lines that are not JSON objects
are skipped and counted, not shown.
"""

from __future__ import annotations

import json
import math
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from astuner.metrics import CURVE_FILE, METRICS_FILE, read_metrics

ROLLOUTS_DIR = "rollouts"
ROOT_NAME = "."
_TAIL = 64


class NotFound(LookupError):
    """A name that is not an experiment, rollout file or rollout under the root (or tries to leave it)."""


@dataclass
class RolloutFilter:
    """Which rollouts a listing keeps; ``None`` means "any". ``task_id`` matches as a substring."""

    success: bool | None = None
    reward_min: float | None = None
    reward_max: float | None = None
    bad_case: str | None = None
    task_id: str | None = None

    def keep(self, row: dict[str, Any]) -> bool:
        if self.success is not None and bool(row["is_success"]) != self.success:
            return False
        reward = row["reward"]
        if self.reward_min is not None and (reward is None or reward < self.reward_min):
            return False
        if self.reward_max is not None and (reward is None or reward > self.reward_max):
            return False
        if self.bad_case == "any" and not row["bad_cases"]:
            return False
        if self.bad_case == "none" and row["bad_cases"]:
            return False
        if self.bad_case not in (None, "any", "none") and self.bad_case not in row["bad_cases"]:
            return False
        return not self.task_id or self.task_id.lower() in str(row["task_id"]).lower()


@dataclass
class _FileIndex:
    """Byte offsets and compact rows of one rollouts file, as far as it has been read."""

    inode: int = -1
    parsed_upto: int = 0
    tail: bytes = b""
    offsets: list[int] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)
    skipped: int = 0


def rollout_advantage(record: dict[str, Any]) -> float | None:
    """The rollout's GRPO advantage: the first finite one its samples carry (the local backbone gives
    every sample of a rollout the same), else None (debug and validation rollouts, older files)."""
    for sample in record.get("samples") or []:
        value = sample.get("advantage") if isinstance(sample, dict) else None
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
    return None


def compact_row(record: dict[str, Any]) -> dict[str, Any]:
    """One rollout as a listing row: ids, outcome, advantage, flagged bad cases and sizes, without token arrays."""
    flags = {**(record.get("bad_cases") or {}), **(record.get("madness") or {})}
    samples = record.get("samples") or []
    final = record.get("final_answer")
    final_text = final if isinstance(final, str) or final is None else json.dumps(final, ensure_ascii=False)
    return {
        "task_id": record.get("task_id"),
        "repeat_index": record.get("repeat_index"),
        "rollout_id": record.get("rollout_id"),
        "reward": record.get("reward"),
        "advantage": rollout_advantage(record),
        "is_success": bool(record.get("is_success")),
        "bad_cases": sorted(k for k, v in flags.items() if v),
        "num_tool_calls": record.get("num_tool_calls"),
        "n_samples": len(samples),
        "n_tokens": sum(len(s.get("token_ids") or []) for s in samples),
        "n_trained": sum(sum(s.get("loss_mask") or []) for s in samples),
        "error": bool(record.get("error")),
        "final_answer": None if final_text is None else final_text[:200],
    }


class ExperimentStore:
    """Read-only access to the experiments under one root directory; safe to share between threads."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        self._lock = threading.Lock()
        self._indexes: dict[Path, _FileIndex] = {}

    def experiments(self) -> list[dict[str, Any]]:
        """Every experiment under the root, most recently modified first."""
        candidates = [self.root] + sorted(p for p in self._children(self.root) if not p.name.startswith("."))
        out = []
        for path in candidates:
            if not _is_experiment(path) or not _inside(path.resolve(), self.root):
                continue
            name = ROOT_NAME if path == self.root else path.name
            out.append(self._describe(name, path))
        return sorted(out, key=lambda e: e["mtime"], reverse=True)

    def experiment_dir(self, name: str) -> Path:
        """The directory of experiment ``name``; ``NotFound`` for anything else."""
        if name == ROOT_NAME:
            path = self.root
        elif not name or name in ("..",) or name.startswith(".") or re.search(r"[/\\\x00]", name):
            raise NotFound(f"no experiment {name!r}")
        else:
            path = (self.root / name).resolve()
        if not _inside(path, self.root) or not path.is_dir() or not _is_experiment(path):
            raise NotFound(f"no experiment {name!r}")
        return path

    def rollout_files(self, name: str) -> list[str]:
        """The ``*.jsonl`` files in the experiment's ``rollouts/``, in natural order (step_2 before step_10)."""
        folder = self.experiment_dir(name) / ROLLOUTS_DIR
        if not folder.is_dir():
            return []
        files = [p.name for p in folder.glob("*.jsonl") if p.is_file() and _inside(p.resolve(), self.root)]
        return sorted(files, key=_natural_key)

    def rollouts(
        self, name: str, flt: RolloutFilter | None = None, *, file: str | None = None, offset: int = 0, limit: int = 50
    ) -> dict[str, Any]:
        """A page of compact rows (each with ``file`` and ``index``) matching ``flt``, and the totals."""
        flt = flt or RolloutFilter()
        files = self.rollout_files(name)
        if file is not None and file not in files:
            raise NotFound(f"no rollout file {file!r} in {name!r}")
        matched: list[dict[str, Any]] = []
        total = skipped = 0
        names: set[str] = set()
        for fname in [file] if file else files:
            index = self._index(self._rollout_path(name, fname))
            total += len(index.rows)
            skipped += index.skipped
            for i, row in enumerate(index.rows):
                names.update(row["bad_cases"])
                if flt.keep(row):
                    matched.append({"file": fname, "index": i, **row})
        offset, limit = max(0, offset), max(1, min(limit, 500))
        return {
            "experiment": name,
            "files": files,
            "total": total,
            "matched": len(matched),
            "skipped_lines": skipped,
            "offset": offset,
            "limit": limit,
            "bad_case_names": sorted(names),
            "rows": matched[offset : offset + limit],
        }

    def rollout_bytes(self, name: str, file: str, index: int) -> bytes:
        """The stored JSON of one rollout, byte for byte (no re-encoding of a possibly large record)."""
        path = self._rollout_path(name, file)
        idx = self._index(path)
        if not 0 <= index < len(idx.offsets):
            raise NotFound(f"no rollout {index} in {name}/{file}")
        with path.open("rb") as f:
            f.seek(idx.offsets[index])
            return f.readline().rstrip(b"\r\n")

    def rollout_record(self, name: str, file: str, index: int) -> dict[str, Any]:
        """One rollout, parsed (NaN and infinities as None)."""
        return json.loads(self.rollout_bytes(name, file, index), parse_constant=lambda _: None)

    def metrics(self, name: str) -> list[dict[str, Any]]:
        """The rows of the experiment's ``metrics.jsonl`` (empty when it has none)."""
        path = self.experiment_dir(name) / METRICS_FILE
        return read_metrics(path) if path.is_file() else []

    def curve_path(self, name: str) -> Path | None:
        """The experiment's curve PNG, or None when none has been drawn."""
        path = self.experiment_dir(name) / CURVE_FILE
        return path if path.is_file() and _inside(path.resolve(), self.root) else None

    def _rollout_path(self, name: str, file: str) -> Path:
        if file not in self.rollout_files(name):
            raise NotFound(f"no rollout file {file!r} in {name!r}")
        return (self.experiment_dir(name) / ROLLOUTS_DIR / file).resolve()

    def _index(self, path: Path) -> _FileIndex:
        with self._lock:
            idx = self._indexes.get(path) or _FileIndex()
            st = path.stat()
            if st.st_ino != idx.inode or st.st_size < idx.parsed_upto or not _tail_matches(path, idx):
                idx = _FileIndex(inode=st.st_ino)
            if st.st_size > idx.parsed_upto:
                _read_more(path, idx)
            self._indexes[path] = idx
            return idx

    def _describe(self, name: str, path: Path) -> dict[str, Any]:
        metrics = path / METRICS_FILE
        curve = path / CURVE_FILE
        summary = None
        if (path / "summary.json").is_file():
            try:
                summary = json.loads((path / "summary.json").read_text(encoding="utf-8"))
            except (OSError, ValueError):
                summary = None
        files = self.rollout_files(name)
        mtimes = [path.stat().st_mtime] + [p.stat().st_mtime for p in (metrics, curve) if p.is_file()]
        mtimes += [(path / ROLLOUTS_DIR / f).stat().st_mtime for f in files]
        return {
            "name": name,
            "title": path.name,
            "rollout_files": files,
            "has_metrics": metrics.is_file(),
            "curve_mtime": curve.stat().st_mtime if curve.is_file() else None,
            "summary": summary if isinstance(summary, dict) else None,
            "mtime": max(mtimes),
        }

    @staticmethod
    def _children(path: Path) -> list[Path]:
        try:
            return [p for p in path.iterdir() if p.is_dir()]
        except OSError:
            return []


def _read_more(path: Path, idx: _FileIndex) -> None:
    with path.open("rb") as f:
        f.seek(idx.parsed_upto)
        pos = idx.parsed_upto
        for line in f:
            if not line.endswith(b"\n"):
                break
            start, pos = pos, pos + len(line)
            idx.parsed_upto, idx.tail = pos, line[-_TAIL:]
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                idx.skipped += 1
                continue
            if not isinstance(record, dict):
                idx.skipped += 1
                continue
            idx.offsets.append(start)
            idx.rows.append(compact_row(record))


def _tail_matches(path: Path, idx: _FileIndex) -> bool:
    if not idx.parsed_upto:
        return True
    with path.open("rb") as f:
        f.seek(idx.parsed_upto - len(idx.tail))
        return f.read(len(idx.tail)) == idx.tail


def _is_experiment(path: Path) -> bool:
    return (path / ROLLOUTS_DIR).is_dir() or (path / METRICS_FILE).is_file()


def _inside(path: Path, root: Path) -> bool:
    return path == root or path.is_relative_to(root)


def _natural_key(name: str) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def parse_bool(value: str | None) -> bool | None:
    """``"1"/"true"/"yes"`` → True, ``"0"/"false"/"no"`` → False, empty or anything else → None (any)."""
    v = (value or "").strip().lower()
    return True if v in ("1", "true", "yes") else False if v in ("0", "false", "no") else None

