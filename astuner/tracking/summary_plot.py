"""The debug backbone's PNG: what one batch of rollouts did, at a glance.

The debug backbone logs no steps, so it has no curve; it has a summary (``summary.json``) and each
rollout's reward and length. ``build_summary_figure`` draws, each panel only when it has data:

- **rates**: the success rate (over all rollouts, failed ones counting as failures) and each
  bad-case and madness rate (over finished rollouts), as horizontal bars on 0..1;
- **reward per rollout**: a histogram of the finished rollouts' rewards;
- **response length**: a histogram of the finished rollouts' generated tokens.

Not guaranteed: readable bars for dozens of madness checks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure

SUMMARY_PNG = "debug_summary.png"
"""The file name, in the experiment folder."""


def summary_rates(summary: Mapping[str, Any]) -> dict[str, float]:
    """``success_rate``, then every ``bad_case/*`` and ``madness/*`` count as a fraction of finished rollouts."""
    rates = {"success_rate": float(summary.get("success_rate", 0.0))}
    finished = int(summary.get("finished_rollouts", 0))
    for key, value in summary.items():
        if key.startswith(("bad_case/", "madness/")) and isinstance(value, (int, float)):
            rates[key] = value / finished if finished else 0.0
    return rates


def build_summary_figure(
    summary: Mapping[str, Any], rewards: Sequence[float], lengths: Sequence[int], title: str
) -> Figure:
    """The summary figure (one axes per panel that has data); ``ValueError`` when no rollout ended."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    if not summary.get("rollouts"):
        raise ValueError("no rollout ended")
    rates = summary_rates(summary)
    draw = [("rates", True), ("reward", bool(rewards)), ("length", bool(lengths))]
    chosen = [name for name, has in draw if has]
    fig = Figure(figsize=(5.2 * len(chosen), 0.9 + 0.28 * max(len(rates), 8)), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    fig.suptitle(
        f"{title}: {summary['rollouts']} rollouts, success rate {rates['success_rate']:.3f}, "
        f"reward mean {float(summary.get('reward_mean', 0.0)):.3f}",
        fontsize=11,
    )
    for i, name in enumerate(chosen):
        ax = fig.add_subplot(1, len(chosen), i + 1)
        if name == "rates":
            labels = list(rates)[::-1]
            colors = ["C2" if k == "success_rate" else "C3" for k in labels]
            bars = ax.barh(labels, [rates[k] for k in labels], color=colors)
            ax.bar_label(bars, fmt="%.3f", fontsize=7, padding=2)
            ax.set_xlim(0, 1.12)
            ax.set_title("rates (fraction of rollouts)", fontsize=10)
            ax.tick_params(axis="y", labelsize=7)
        elif name == "reward":
            ax.hist(rewards, bins=min(20, max(5, len(set(rewards)))), color="C0")
            ax.set_title("reward per rollout", fontsize=10)
            ax.set_ylabel("rollouts")
        else:
            ax.hist(lengths, bins=min(20, max(5, len(lengths) // 2)), color="C1")
            ax.set_title("response length (generated tokens)", fontsize=10)
            ax.set_ylabel("rollouts")
        if name != "rates":
            ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    return fig


def plot_summary(
    summary: Mapping[str, Any], rewards: Sequence[float], lengths: Sequence[int], png_path: Path, title: str
) -> Path:
    """Draw ``build_summary_figure`` into ``png_path`` (atomically) and return it."""
    from astuner.tracking.curves import save_png

    return save_png(build_summary_figure(summary, rewards, lengths, title), png_path)  # type: ignore[return-value]
