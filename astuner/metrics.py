"""The training metrics of a run: ``metrics.jsonl``, the curve PNG, and optional experiment trackers.

``MetricsLogger(exp_dir).log(step, {...})`` appends one JSON line per step to
``<exp_dir>/metrics.jsonl`` — ``step``, ``time`` (Unix seconds) and the step's scalar metrics — and
redraws ``<exp_dir>/training_curve.png`` every ``plot_every`` steps and when it is closed. The file
is opened, appended and closed on every step, so a crash loses at most the step being written and
the log viewer can read the file while the run goes on.

Metric names the curve knows (a backbone should log these; anything else is still written):
``reward_mean``; ``success_rate``; ``bad_case/<name>`` and ``madness/<name>`` as the fraction of the
step's rollouts with that flag; and validation metrics prefixed ``val/`` (``val/reward_mean``,
``val/success_rate`` share the training panels, the other ``val/*`` keys get their own).

Trackers (``trainer_common.logger``): ``none`` (default: local files only), ``tensorboard`` (event
files under ``<exp_dir>/tensorboard``, local), ``wandb`` and ``swanlab``. The tracker package is
imported only when it is configured and none is a dependency of astuner. wandb and swanlab upload
to their cloud services by default, so they are never used unless configured explicitly; their own
environment variables (``WANDB_MODE=offline``, ``SWANLAB_MODE=local``) keep them on this machine.
Under CI (``CI`` set) this module prints nothing and asks wandb to be silent (``WANDB_SILENT``).

Not guaranteed: non-scalar values are dropped (with a warning naming the key, once per key);
non-finite numbers are written as ``null``; a failing curve redraw (matplotlib missing, a full
disk) warns and never stops training; a step logged twice (a resumed run) is plotted with its
last value. swanlab's own console output is not silenced.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

METRICS_FILE = "metrics.jsonl"
CURVE_FILE = "training_curve.png"
TRACKERS = ("none", "console", "tensorboard", "wandb", "swanlab")


class TrackerUnavailable(RuntimeError):
    """A configured tracker whose package is not installed."""


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
    """Draw reward, success rate, bad-case rates and validation metrics against step into a PNG.

    One panel per group that has data. ``png_path`` may be a binary file object (the viewer renders
    into memory); a path is written atomically (temporary file, then rename) so a reader never sees
    half a PNG. Raises ``ValueError`` when the file has no row with a step.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    series = _series(read_metrics(Path(metrics_path)))
    if not series:
        raise ValueError(f"{metrics_path}: no rows with a step to plot")
    panels = _panels(series)
    ncols = min(2, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    fig = Figure(figsize=(6.4 * ncols, 3.6 * nrows), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    last = max(step for points in series.values() for step, _ in points)
    fig.suptitle(f"{title or Path(metrics_path).parent.name} (step {last})", fontsize=11)
    for i, (name, keys, unit_range) in enumerate(panels):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        for key in keys:
            steps, values = zip(*series[key])
            sparse = key.startswith("val/") or len(steps) < 20
            ax.plot(steps, values, marker="o" if sparse else None, markersize=3, linewidth=1.4, label=key)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("step")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if unit_range:
            ax.set_ylim(-0.03, 1.03)
        ax.legend(fontsize=7, loc="best")
    if isinstance(png_path, (str, Path)):
        target = Path(png_path)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        fig.savefig(tmp, format="png")
        os.replace(tmp, target)
        return target
    fig.savefig(png_path, format="png")
    return png_path


def _series(rows: list[dict[str, Any]]) -> dict[str, list[tuple[float, float]]]:
    by_step: dict[float, dict[str, Any]] = {}
    for row in rows:
        step = row.get("step")
        if isinstance(step, (int, float)) and not isinstance(step, bool):
            by_step.setdefault(step, {}).update(row)
    series: dict[str, list[tuple[float, float]]] = {}
    for step in sorted(by_step):
        for key, value in by_step[step].items():
            if key in ("step", "time") or not _is_number(value):
                continue
            series.setdefault(key, []).append((step, float(value)))
    return series


def _panels(series: dict[str, list]) -> list[tuple[str, list[str], bool]]:
    """(title, keys, values are rates in [0, 1]) for each panel that has data."""
    keys = sorted(series)
    groups = [
        ("reward (mean)", [k for k in ("reward_mean", "val/reward_mean") if k in series], False),
        ("success rate", [k for k in ("success_rate", "val/success_rate") if k in series], True),
        ("bad cases (fraction of rollouts)", [k for k in keys if k.startswith(("bad_case/", "madness/"))], False),
        ("validation", [k for k in keys if k.startswith("val/") and k not in ("val/reward_mean", "val/success_rate")],
         False),
    ]
    return [g for g in groups if g[1]]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


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
    """Appends one line per training step to ``metrics.jsonl``; redraws the curve; feeds a tracker.

    ``tracker`` is ``trainer_common.logger``: ``none``/``console`` (no tracker), ``tensorboard``,
    ``wandb`` or ``swanlab``; a configured tracker whose package is missing raises
    ``TrackerUnavailable`` here, at the start of the run, not after hours of training. ``echo``
    prints a one-line step summary to stdout; by default only when stderr is not a terminal (where
    a backbone's progress bar is off, e.g. a cluster job's log file) and ``CI`` is not set.
    """

    def __init__(
        self,
        exp_dir: Path,
        *,
        plot_every: int = 5,
        tracker: str = "none",
        project: str = "astuner",
        run_name: str | None = None,
        config: Mapping[str, Any] | None = None,
        echo: bool | None = None,
    ) -> None:
        if plot_every < 1:
            raise ValueError(f"plot_every must be >= 1, got {plot_every}")
        self.exp_dir = Path(exp_dir)
        self.exp_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.exp_dir / METRICS_FILE
        self.curve_path = self.exp_dir / CURVE_FILE
        self.plot_every = plot_every
        self.echo = (not _quiet() and not sys.stderr.isatty()) if echo is None else echo
        self._steps_since_plot = 0
        self._warned: set[str] = set()
        self._closed = False
        self._sink = _make_sink(tracker, self.exp_dir, project, run_name or self.exp_dir.name, dict(config or {}))

    @classmethod
    def from_config(cls, config: Any, exp_dir: Path, **kwargs: Any) -> "MetricsLogger":
        """A logger set up from a loaded ``Config``: tracker, project, run name and ``logview.plot_every``."""
        a = config.astuner
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
        if self._sink is not None:
            self._sink.log({k: v for k, v in row.items() if k not in ("step", "time") and v is not None}, row["step"])
        if self.echo:
            print(_echo_line(row), flush=True)
        self._steps_since_plot += 1
        if self._steps_since_plot >= self.plot_every:
            self.plot()
        return row

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
        """Draw the final curve and close the tracker; calling it again does nothing."""
        if self._closed:
            return
        self._closed = True
        if self._steps_since_plot:
            self.plot()
        if self._sink is not None:
            self._sink.close()

    def __enter__(self) -> "MetricsLogger":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _echo_line(row: dict[str, Any]) -> str:
    keys = ["reward_mean", "success_rate", "val/reward_mean", "val/success_rate"]
    parts = [f"{k} {row[k]:.3f}" for k in keys if isinstance(row.get(k), (int, float))]
    return " | ".join([f"step {row['step']}", *parts])


class _TensorBoardSink:
    def __init__(self, log_dir: Path) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            try:
                from tensorboardX import SummaryWriter
            except ImportError:
                raise TrackerUnavailable(
                    "trainer_common.logger=tensorboard needs the tensorboard package (pip install tensorboard)"
                ) from None
        self._writer = SummaryWriter(log_dir=str(log_dir))

    def log(self, scalars: dict[str, Any], step: int) -> None:
        for key, value in scalars.items():
            self._writer.add_scalar(key, value, step)
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


class _WandbSink:
    def __init__(self, exp_dir: Path, project: str, run_name: str, config: dict[str, Any]) -> None:
        if _quiet():
            os.environ.setdefault("WANDB_SILENT", "true")
        try:
            import wandb
        except ImportError:
            raise TrackerUnavailable("trainer_common.logger=wandb needs the wandb package (pip install wandb)") from None
        self._run = wandb.init(project=project, name=run_name, dir=str(exp_dir), config=config)

    def log(self, scalars: dict[str, Any], step: int) -> None:
        self._run.log(scalars, step=step)

    def close(self) -> None:
        self._run.finish()


class _SwanlabSink:
    def __init__(self, exp_dir: Path, project: str, run_name: str, config: dict[str, Any]) -> None:
        try:
            import swanlab
        except ImportError:
            raise TrackerUnavailable(
                "trainer_common.logger=swanlab needs the swanlab package (pip install swanlab)"
            ) from None
        logdir = exp_dir / "swanlog"
        logdir.mkdir(parents=True, exist_ok=True)
        self._swanlab = swanlab
        swanlab.init(project=project, experiment_name=run_name, logdir=str(logdir), config=config)

    def log(self, scalars: dict[str, Any], step: int) -> None:
        self._swanlab.log(scalars, step=step)

    def close(self) -> None:
        self._swanlab.finish()


def _make_sink(name: str, exp_dir: Path, project: str, run_name: str, config: dict[str, Any]) -> Any:
    name = (name or "none").strip().lower()
    if name in ("none", "console"):
        return None
    if name == "tensorboard":
        return _TensorBoardSink(exp_dir / "tensorboard")
    if name == "wandb":
        return _WandbSink(exp_dir, project, run_name, config)
    if name == "swanlab":
        return _SwanlabSink(exp_dir, project, run_name, config)
    raise ValueError(f"trainer_common.logger: unknown tracker {name!r} (choose from {', '.join(TRACKERS)})")


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
