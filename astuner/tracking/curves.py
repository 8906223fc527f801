"""The training-curve PNG: a grid of panels, each with the metrics that share its scale.

The panels, in order, each drawn only when it has data:

==========================  ============================================================  ========
panel                       metrics                                                       y range
==========================  ============================================================  ========
success rate                ``success_rate``                                              0..1
bad cases                   ``bad_case/*``, ``madness/*``, ``context_overflow_rate``      0..1
reward                      ``reward_mean``                                               auto
response length (tokens)    ``response_length_mean``                                      auto
policy loss                 ``pg_loss``                                                   auto
KL                          ``ppo_kl``, ``kl_loss``                                       auto
grad norm                   ``grad_norm``                                                 auto
time per step (s)           ``step_time_s``, ``rollout_time_s``, ``train_time_s``,        auto
                            ``weight_sync_s``
validation (other)          any other ``val/*`` metric                                    auto
==========================  ============================================================  ========

Each panel also holds the ``val/`` copy of its metrics: a metric and its validation copy share a
colour, training as a solid line, validation dashed with round markers. Keeping rates, lengths and
losses apart is the point: on one shared axis, rates between 0 and 1 are flat lines beside lengths
in the hundreds. Other training metrics (throughput, counts, ``lr``) are in ``metrics.jsonl`` and
not drawn.

Not guaranteed: a readable legend for dozens of ``madness/*`` checks; a step logged twice (a
resumed run) is drawn with its last value.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure


@dataclass(frozen=True)
class Panel:
    """One panel: its title, the training metrics it draws (each with its ``val/`` copy), its y range."""

    title: str
    keys: tuple[str, ...]
    unit_range: bool = False


_BAD = ("bad_case/", "madness/")
_FIXED: tuple[tuple[str, Callable[[str], bool], bool], ...] = (
    ("success rate", lambda k: k == "success_rate", True),
    ("bad cases (fraction of rollouts)", lambda k: k.startswith(_BAD) or k == "context_overflow_rate", True),
    ("reward (mean)", lambda k: k == "reward_mean", False),
    ("response length (tokens)", lambda k: k == "response_length_mean", False),
    ("policy loss", lambda k: k == "pg_loss", False),
    ("KL", lambda k: k in ("ppo_kl", "kl_loss"), False),
    ("grad norm", lambda k: k == "grad_norm", False),
    ("time per step (s)", lambda k: k in ("step_time_s", "rollout_time_s", "train_time_s", "weight_sync_s"), False),
)


def series(rows: Sequence[dict[str, Any]]) -> dict[str, list[tuple[float, float]]]:
    """Metric -> (step, value) points in step order; the last row of a repeated step wins, non-numbers are skipped."""
    by_step: dict[float, dict[str, Any]] = {}
    for row in rows:
        step = row.get("step")
        if isinstance(step, (int, float)) and not isinstance(step, bool):
            by_step.setdefault(step, {}).update(row)
    out: dict[str, list[tuple[float, float]]] = {}
    for step in sorted(by_step):
        for key, value in by_step[step].items():
            if key in ("step", "time") or not _is_number(value):
                continue
            out.setdefault(key, []).append((step, float(value)))
    return out


def panels(data: dict[str, list[tuple[float, float]]]) -> list[Panel]:
    """The panels that have data, in the module docstring's order."""
    bases = sorted({k[4:] if k.startswith("val/") else k for k in data})
    result, placed = [], set()
    for title, wanted, unit in _FIXED:
        keys = tuple(k for k in bases if wanted(k))
        placed.update(keys)
        if keys:
            result.append(Panel(title, keys, unit))
    other = tuple(k[4:] for k in sorted(data) if k.startswith("val/") and k[4:] not in placed)
    if other:
        result.append(Panel("validation (other)", other))
    return result


def build_figure(rows: Sequence[dict[str, Any]], title: str) -> Figure:
    """The curve figure of ``metrics.jsonl`` rows (one axes per panel); ``ValueError`` without a row with a step."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    data = series(rows)
    if not data:
        raise ValueError("no rows with a step to plot")
    chosen = panels(data)
    if not chosen:
        raise ValueError("no metric the curve draws")
    ncols = 1 if len(chosen) == 1 else 2 if len(chosen) <= 4 else 3
    nrows = math.ceil(len(chosen) / ncols)
    fig = Figure(figsize=(6.0 * ncols, 3.4 * nrows), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    last = max(step for points in data.values() for step, _ in points)
    fig.suptitle(f"{title} (step {last:g})", fontsize=11)
    for i, panel in enumerate(chosen):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        for n, key in enumerate(panel.keys):
            color = f"C{n % 10}"
            if key in data:
                steps, values = zip(*data[key])
                ax.plot(steps, values, color=color, linewidth=1.4, marker="o" if len(steps) < 20 else None,
                        markersize=3, label=key)
            if f"val/{key}" in data:
                steps, values = zip(*data[f"val/{key}"])
                ax.plot(steps, values, color=color, linewidth=1.2, linestyle="--", marker="o", markersize=4,
                        label=f"val/{key}")
        ax.set_title(panel.title, fontsize=10)
        ax.set_xlabel("step")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if panel.unit_range:
            ax.set_ylim(-0.03, 1.03)
        ax.legend(fontsize=7, loc="best")
    return fig


def save_png(fig: Figure, png_path: Path | IO[bytes]) -> Path | IO[bytes]:
    """Write ``fig`` as a PNG; a path atomically (temporary file, then rename)."""
    if isinstance(png_path, (str, Path)):
        target = Path(png_path)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        fig.savefig(tmp, format="png")
        os.replace(tmp, target)
        return target
    fig.savefig(png_path, format="png")
    return png_path


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
