"""The training metrics of a run: ``metrics.jsonl``, the curve PNG, and the experiment trackers.

``MetricsLogger(exp_dir).log(step, {...})`` appends one JSON line per step to
``<exp_dir>/metrics.jsonl`` — ``step``, ``time`` (Unix seconds) and the step's scalar metrics — and
redraws ``<exp_dir>/training_curve.png`` every ``plot_every`` steps and when it is closed. The file
is opened, appended and closed on every step, so a crash loses at most the step being written and
the log viewer can read the file while the run goes on. The curve is a grid of panels, one per
scale (rates, reward, response length, loss, KL, grad norm, time; ``astuner.tracking.curves``).

Trackers (``trainer_common.logger``): none (default: local files only), or any of
``tensorboard``, ``wandb``, ``swanlab`` and ``mlflow`` at once (``astuner.tracking.sinks`` says
what each writes and where). Each gets every step's scalars and, from ``log_table``, a table of
validation completions. A configured tracker whose package is missing raises
``TrackerUnavailable`` before anything is created (``astuner.tracking.names.check_trackers`` is the
same check without a logger). A run that resumes (``resume_step``) continues the tracker runs whose
ids ``<exp_dir>/tracker_ids.json`` holds. Tracker packages are imported only when configured and
none is a dependency of astuner. wandb and swanlab upload to their cloud services by default, so
they are never used unless configured; their own environment variables (``WANDB_MODE=offline``,
``SWANLAB_MODE=local``) keep them on this machine.

Not guaranteed: non-scalar values are dropped (with a warning naming the key, once per key);
non-finite numbers are written as ``null`` and not sent to trackers; a failing curve redraw
(matplotlib missing, a full disk) or table warns and never stops training, while a tracker that
fails to take scalars raises (as its own client does).
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from astuner.tracking.curves import build_figure, save_png
from astuner.tracking.names import TRACKERS, TrackerUnavailable, check_trackers, tracker_names
from astuner.tracking.run_ids import RunIds
from astuner.tracking.sinks import Sink, SinkContext, build_sinks
from astuner.tracking.table import CompletionRow

if TYPE_CHECKING:
    from astuner.config.schema import Config

__all__ = [
    "CURVE_FILE", "METRICS_FILE", "TRACKERS", "MetricsLogger", "TrackerUnavailable", "plot_curves", "read_metrics",
]

METRICS_FILE = "metrics.jsonl"
CURVE_FILE = "training_curve.png"
TABLE_KEY = "val/completions"
"""The name under which validation tables reach the trackers."""


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of a metrics file in order; blank, partial or malformed lines are skipped, NaN/Infinity read as None."""
    rows = []
    with Path(path).open(encoding="utf-8") as f:
        for line in f:
            if not line.endswith("\n"):
                break
            try:
                row = json.loads(line, parse_constant=lambda _: None)
            except ValueError:
                continue
            if isinstance(row, dict):
                rows.append(row)
    return rows


def plot_curves(metrics_path: Path, png_path: Path | IO[bytes], title: str | None = None) -> Path | IO[bytes]:
    """Draw a ``metrics.jsonl`` as the multi-panel curve (``astuner.tracking.curves``) into a PNG.

    ``png_path`` may be a binary file object (the viewer renders into memory); a path is written
    atomically (temporary file, then rename) so a reader never sees half a PNG. Raises
    ``ValueError`` when the file has no row with a step, or no metric the curve draws.
    """
    try:
        fig = build_figure(read_metrics(Path(metrics_path)), title or Path(metrics_path).parent.name)
    except ValueError as exc:
        raise ValueError(f"{metrics_path}: {exc}") from None
    return save_png(fig, png_path)


def _scalar(value: Any) -> tuple[bool, Any]:
    """(is a scalar, its JSON value): bools become 0/1, numpy/torch scalars their Python value."""
    if not isinstance(value, (bool, int, float, str, bytes)) and hasattr(value, "item"):
        try:
            value = value.item()
        except (TypeError, ValueError, RuntimeError):
            return False, None
    if isinstance(value, bool):
        return True, int(value)
    if isinstance(value, int):
        return True, value
    if isinstance(value, float):
        return True, value if math.isfinite(value) else None
    return False, None


def _quiet() -> bool:
    return bool(os.environ.get("CI"))


class MetricsLogger:
    """Appends one line per training step to ``metrics.jsonl``; redraws the curve; feeds the trackers.

    ``tracker`` is ``trainer_common.logger``: ``none``, one tracker name or several; ``console``
    adds nothing (the console already has the progress bar, or ``echo``). An unknown name raises
    ``ValueError``, a missing package ``TrackerUnavailable``, both before the folder or any tracker
    run is created. ``resume_step`` (the checkpoint step a resumed run continues after; None for a
    new run) makes the trackers continue their stored runs. ``echo`` prints a one-line step summary
    to stdout; by default only when stderr is not a terminal (where a backbone's progress bar is
    off, e.g. a cluster job's log file) and ``CI`` is not set.
    """

    def __init__(
        self,
        exp_dir: Path,
        *,
        plot_every: int = 5,
        tracker: str | Sequence[str] = "none",
        project: str = "astuner",
        run_name: str | None = None,
        config: Mapping[str, Any] | None = None,
        echo: bool | None = None,
        resume_step: int | None = None,
    ) -> None:
        if plot_every < 1:
            raise ValueError(f"plot_every must be >= 1, got {plot_every}")
        names = tracker_names(tracker)
        check_trackers(names)
        self.exp_dir = Path(exp_dir)
        self.exp_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.exp_dir / METRICS_FILE
        self.curve_path = self.exp_dir / CURVE_FILE
        self.plot_every = plot_every
        self.echo = (not _quiet() and not sys.stderr.isatty()) if echo is None else echo
        self._steps_since_plot = 0
        self._warned: set[str] = set()
        self._closed = False
        context = SinkContext(
            exp_dir=self.exp_dir, project=project, run_name=run_name or self.exp_dir.name,
            run_ids=RunIds(self.exp_dir, resume=resume_step is not None), resume_step=resume_step,
            config=dict(config or {}),
        )
        self.sinks: list[Sink] = build_sinks(names, context)

    @classmethod
    def from_config(cls, config: Config, exp_dir: Path, **kwargs: Any) -> MetricsLogger:
        """A logger set up from a loaded ``Config``: trackers, project, run name, ``logview.plot_every``;
        the trackers that keep a config are given the ``astuner`` settings."""
        a = config.astuner
        kwargs.setdefault("config", a.model_dump(mode="json"))
        return cls(
            exp_dir,
            plot_every=a.logview.plot_every,
            tracker=a.trainer_common.logger,
            project=a.project_name,
            run_name=a.experiment_name,
            **kwargs,
        )

    def log(self, step: int, metrics: Mapping[str, Any]) -> dict[str, Any]:
        """Append the step's row and return it; redraw the curve every ``plot_every`` steps."""
        if self._closed:
            raise RuntimeError("MetricsLogger.log after close()")
        reserved = {"step", "time"} & set(metrics)
        if reserved:
            raise ValueError(f"metric names {sorted(reserved)} are reserved (the logger writes them)")
        row: dict[str, Any] = {"step": int(step), "time": round(time.time(), 3)}
        for key, value in metrics.items():
            ok, clean = _scalar(value)
            if ok:
                row[str(key)] = clean
            elif key not in self._warned:
                self._warned.add(key)
                warnings.warn(f"metrics: {key!r} is not a scalar ({type(value).__name__}); not logged", stacklevel=2)
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
        scalars = {k: v for k, v in row.items() if k not in ("step", "time") and v is not None}
        for sink in self.sinks:
            sink.log(scalars, row["step"])
        if self.echo:
            print(_echo_line(row), flush=True)
        self._steps_since_plot += 1
        if self._steps_since_plot >= self.plot_every:
            self.plot()
        return row

    def log_table(self, step: int, rows: Sequence[CompletionRow], key: str = TABLE_KEY) -> None:
        """Send a validation's completions table (``astuner.tracking.table.completion_rows``) to every
        tracker; a tracker that fails warns (once) and training goes on. Nothing is written locally:
        ``rollouts/val_step_*.jsonl`` holds every rollout in full."""
        if self._closed:
            raise RuntimeError("MetricsLogger.log_table after close()")
        if not rows:
            return
        for sink in self.sinks:
            try:
                sink.log_table(key, rows, int(step))
            except Exception as exc:  # a table is a view; it must never stop a training run
                if f"table:{sink.name}" not in self._warned:
                    self._warned.add(f"table:{sink.name}")
                    warnings.warn(f"metrics: {sink.name} table not logged: {exc}", stacklevel=2)

    def plot(self) -> Path | None:
        """Redraw the curve now; None (with a warning) when it could not be drawn."""
        self._steps_since_plot = 0
        if not self.path.is_file():
            return None
        try:
            return plot_curves(self.path, self.curve_path)  # type: ignore[return-value]
        except Exception as exc:  # a curve must never stop a training run
            if "plot" not in self._warned:
                self._warned.add("plot")
                warnings.warn(f"metrics: {self.curve_path.name} not drawn: {exc}", stacklevel=2)
            return None

    def close(self) -> None:
        """Draw the final curve and close the trackers; calling it again does nothing."""
        if self._closed:
            return
        self._closed = True
        if self._steps_since_plot:
            self.plot()
        errors = []
        for sink in self.sinks:
            try:
                sink.close()
            except Exception as exc:  # close the others first, then report the first failure
                errors.append(exc)
        if errors:
            raise errors[0]

    def __enter__(self) -> MetricsLogger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _echo_line(row: dict[str, Any]) -> str:
    keys = ["reward_mean", "success_rate", "val/reward_mean", "val/success_rate"]
    parts = [f"{k} {row[k]:.3f}" for k in keys if isinstance(row.get(k), (int, float))]
    return " | ".join([f"step {row['step']}", *parts])


def main(argv: list[str] | None = None) -> int:
    """``python -m astuner.metrics METRICS.jsonl OUT.png``: redraw a curve from a metrics file."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m astuner.metrics METRICS.jsonl OUT.png", file=sys.stderr)
        return 2
    print(plot_curves(Path(args[0]), Path(args[1])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
