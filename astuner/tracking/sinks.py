"""One adapter ("sink") per experiment tracker: scalars per step, a completions table, resume.

Every sink takes the step's scalars (``log``), a validation's completions table (``log_table``) and
is closed once (``close``). A tracker package is imported only when its sink is built, and none is
a dependency of astuner. What each writes, where, and how it resumes:

- ``tensorboard``: event files under ``<exp_dir>/tensorboard`` (torch's ``SummaryWriter``, else
  tensorboardX); the table as Markdown text. A resumed run appends to the same folder with
  ``purge_step`` = the first step it logs, so TensorBoard hides the points the killed run logged
  after its checkpoint.
- ``wandb``: ``wandb.init(dir=<exp_dir>, id=..., resume="allow")``; the table as a ``wandb.Table``.
  ``WANDB_MODE=offline`` keeps it on this machine (each launch is a folder
  ``<exp_dir>/wandb/offline-run-<time>-<id>``; ``wandb sync`` puts them into one run).
- ``swanlab``: ``swanlab.init(logdir=<exp_dir>/swanlog, id=..., resume="allow")``; the table as a
  list of ``swanlab.Text`` (one per row, its caption the task, reward and outcome).
- ``mlflow``: ``MLFLOW_TRACKING_URI`` when set, else a file store under ``<exp_dir>/mlruns``;
  experiment = the project name; the first launch's run id is stored and a resume reopens it with
  ``start_run(run_id=...)``; the table with ``mlflow.log_table`` as
  ``val_completions/step_<N>.json``; metric names with characters mlflow refuses get ``_`` there.

The run ids are kept in ``<exp_dir>/tracker_ids.json`` (``astuner.tracking.run_ids``). Under CI
(``CI`` set) wandb is asked to be silent (``WANDB_SILENT``).

Not guaranteed: steps a resumed run logs again (those after the last checkpoint of the killed run)
replace the old points in TensorBoard only; wandb drops a step lower than the run's last one (with
its own warning), swanlab and mlflow keep both points. swanlab's console output is not silenced;
a swanlab whose ``init`` has no ``id``/``resume`` cannot be used.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

from astuner.tracking.names import TrackerUnavailable
from astuner.tracking.run_ids import RunIds, new_run_id
from astuner.tracking.table import COLUMNS, CompletionRow, columns, markdown


@dataclass
class SinkContext:
    """What every sink is built from."""

    exp_dir: Path
    project: str
    run_name: str
    run_ids: RunIds
    resume_step: int | None = None
    """The step a resumed run continues after (its checkpoint's); None for a new run."""
    config: dict[str, Any] = field(default_factory=dict)
    """The run's settings, shown by trackers that keep a config (wandb, swanlab, mlflow)."""


class Sink(Protocol):
    """A tracker adapter."""

    name: str

    def log(self, scalars: Mapping[str, float], step: int) -> None: ...

    def log_table(self, key: str, rows: Sequence[CompletionRow], step: int) -> None: ...

    def close(self) -> None: ...


def build_sinks(names: Sequence[str], ctx: SinkContext) -> list[Sink]:
    """The sinks of ``names``, in order; when one cannot be built, those already built are closed
    and the error goes on (``TrackerUnavailable`` for a missing package)."""
    builders = {"tensorboard": TensorBoardSink, "wandb": WandbSink, "swanlab": SwanlabSink, "mlflow": MlflowSink}
    sinks: list[Sink] = []
    try:
        for name in names:
            sinks.append(builders[name](ctx))
    except BaseException:
        for sink in reversed(sinks):
            sink.close()
        raise
    return sinks


def _quiet() -> bool:
    return bool(os.environ.get("CI"))


def _import(tracker: str, module: str, package: str) -> ModuleType:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise TrackerUnavailable(
            f"trainer_common.logger: {tracker!r} needs the {package} package (pip install {package})"
        ) from None


class TensorBoardSink:
    name = "tensorboard"

    def __init__(self, ctx: SinkContext) -> None:
        try:
            writer_cls = _import("tensorboard", "torch.utils.tensorboard", "tensorboard").SummaryWriter
        except TrackerUnavailable:
            writer_cls = _import("tensorboard", "tensorboardX", "tensorboard").SummaryWriter
        kwargs: dict[str, Any] = {"log_dir": str(ctx.exp_dir / "tensorboard")}
        if ctx.resume_step is not None:
            kwargs["purge_step"] = ctx.resume_step + 1
        self._writer = writer_cls(**kwargs)

    def log(self, scalars: Mapping[str, float], step: int) -> None:
        for key, value in scalars.items():
            self._writer.add_scalar(key, value, step)
        self._writer.flush()

    def log_table(self, key: str, rows: Sequence[CompletionRow], step: int) -> None:
        self._writer.add_text(key, markdown(rows), step)
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


class WandbSink:
    name = "wandb"

    def __init__(self, ctx: SinkContext) -> None:
        if _quiet():
            os.environ.setdefault("WANDB_SILENT", "true")
        self._wandb = _import("wandb", "wandb", "wandb")
        stored = ctx.run_ids.get(self.name)
        run_id = stored or new_run_id()
        kwargs: dict[str, Any] = {
            "project": ctx.project, "name": ctx.run_name, "dir": str(ctx.exp_dir), "id": run_id, "resume": "allow",
        }
        if stored is None:
            kwargs["config"] = ctx.config
        self._run = self._wandb.init(**kwargs)
        ctx.run_ids.store(self.name, run_id)
        if stored is not None and ctx.config:  # a resumed run's settings may differ (e.g. more steps)
            self._run.config.update(ctx.config, allow_val_change=True)

    def log(self, scalars: Mapping[str, float], step: int) -> None:
        self._run.log(dict(scalars), step=step)

    def log_table(self, key: str, rows: Sequence[CompletionRow], step: int) -> None:
        table = self._wandb.Table(columns=list(COLUMNS), data=[row.values() for row in rows])
        self._run.log({key: table}, step=step)

    def close(self) -> None:
        self._run.finish()


class SwanlabSink:
    name = "swanlab"

    def __init__(self, ctx: SinkContext) -> None:
        self._swanlab = _import("swanlab", "swanlab", "swanlab")
        logdir = ctx.exp_dir / "swanlog"
        logdir.mkdir(parents=True, exist_ok=True)
        run_id = ctx.run_ids.get(self.name) or new_run_id()
        self._swanlab.init(
            project=ctx.project, experiment_name=ctx.run_name, logdir=str(logdir), config=ctx.config,
            id=run_id, resume="allow",
        )
        ctx.run_ids.store(self.name, run_id)

    def log(self, scalars: Mapping[str, float], step: int) -> None:
        self._swanlab.log(dict(scalars), step=step)

    def log_table(self, key: str, rows: Sequence[CompletionRow], step: int) -> None:
        texts = [self._swanlab.Text(row.text, caption=_caption(row)) for row in rows]
        self._swanlab.log({key: texts}, step=step)

    def close(self) -> None:
        self._swanlab.finish()


_MLFLOW_REFUSED = re.compile(r"[^0-9A-Za-z_\-. :/]")


class MlflowSink:
    name = "mlflow"

    def __init__(self, ctx: SinkContext) -> None:
        self._mlflow = mlflow = _import("mlflow", "mlflow", "mlflow")
        if not os.environ.get("MLFLOW_TRACKING_URI"):
            mlflow.set_tracking_uri((ctx.exp_dir / "mlruns").resolve().as_uri())
        mlflow.set_experiment(ctx.project)
        stored = ctx.run_ids.get(self.name)
        run = mlflow.start_run(run_id=stored) if stored else mlflow.start_run(run_name=ctx.run_name)
        ctx.run_ids.store(self.name, run.info.run_id)
        if stored is None and ctx.config:
            mlflow.log_dict(ctx.config, "astuner_config.json")

    def log(self, scalars: Mapping[str, float], step: int) -> None:
        self._mlflow.log_metrics({_MLFLOW_REFUSED.sub("_", k): v for k, v in scalars.items()}, step=step)

    def log_table(self, key: str, rows: Sequence[CompletionRow], step: int) -> None:
        name = _MLFLOW_REFUSED.sub("_", key).replace("/", "_")
        self._mlflow.log_table(data=columns(rows), artifact_file=f"{name}/step_{step:06d}.json")

    def close(self) -> None:
        self._mlflow.end_run()


def _caption(row: CompletionRow) -> str:
    outcome = "success" if row.success else "failure"
    return f"{row.task_id} #{row.repeat} | reward {row.reward:.3f} | {outcome}"
