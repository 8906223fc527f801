"""The experiment's two figures: the run's curves with before/after bars, and a token view.

Why not only the backbone's ``training_curve.png``: it puts every ``val/*`` metric on one panel,
where token counts dwarf the bad-case rates this experiment is about. ``plot_run`` draws what the
write-up discusses (reward, success and each bad case per step, validation points, the
before/after bars); ``plot_tokens`` draws a rollout the way the log viewer and the seed's
screenshot do: one block per token with its id, trained tokens (loss mask 1) coloured.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

from astuner.task_judge.bad_cases import BAD_CASES

COLORS = {"malformed_tool_call": "tab:red", "empty_tool_stdout": "tab:orange", "answer_before_tool_response": "tab:purple"}
MARKERS = ("<|im_start|>", "<|im_end|>", "<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(plt: Any, fig: Any, png: str | Path) -> Path:
    fig.tight_layout()
    out = Path(png)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def _printable(text: str) -> str:
    """``text`` with newlines as ``\\n`` and other control characters as ``\\xNN`` (no font draws them)."""
    return "".join("\\n" if c == "\n" else c if c.isprintable() or c == " " else f"\\x{ord(c):02x}" for c in text)


def plot_run(rows: list[dict[str, Any]], before: dict[str, float], after: dict[str, float], png: str | Path, title: str) -> Path:
    """Four panels: reward, success, bad-case rates per training step (validation as dots), and
    validation before vs after."""
    plt = _pyplot()
    train = [r for r in rows if r.get("step", 0) > 0 and "reward_mean" in r]
    val = [r for r in rows if "val/success_rate" in r]
    fig, axes = plt.subplots(2, 2, figsize=(12, 7.5))
    for ax, key, label in ((axes[0][0], "reward_mean", "reward (mean)"), (axes[0][1], "success_rate", "success rate")):
        ax.plot([r["step"] for r in train], [r[key] for r in train], color="tab:blue", label="training rollouts")
        ax.plot([r["step"] for r in val], [r[f"val/{key}"] for r in val], "o-", color="tab:green", label="validation")
        ax.set_title(label)
        ax.set_xlabel("GRPO step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    ax = axes[1][0]
    for name in BAD_CASES:
        ax.plot([r["step"] for r in train], [r.get(f"bad_case/{name}", 0) for r in train], color=COLORS[name], alpha=0.6, label=name)
        ax.plot([r["step"] for r in val], [r[f"val/bad_case/{name}"] for r in val], "o--", color=COLORS[name])
    ax.set_title("bad cases (fraction of rollouts; dots: validation)")
    ax.set_xlabel("GRPO step")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax = axes[1][1]
    keys = ["success_rate", *(f"bad_case/{n}" for n in BAD_CASES)]
    labels = ["success", *("\n".join(textwrap.wrap(n.replace("_", " "), 14)) for n in BAD_CASES)]
    xs = range(len(keys))
    ax.bar([x - 0.2 for x in xs], [before[k] for k in keys], width=0.4, color="tab:gray", label="before GRPO (SFT)")
    ax.bar([x + 0.2 for x in xs], [after[k] for k in keys], width=0.4, color="tab:green", label="after GRPO")
    for x, k in zip(xs, keys):
        ax.text(x - 0.2, before[k] + 0.01, f"{before[k]:.2f}", ha="center", fontsize=8)
        ax.text(x + 0.2, after[k] + 0.01, f"{after[k]:.2f}", ha="center", fontsize=8)
    ax.set_xticks(list(xs), labels, fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_title("validation: before vs after")
    ax.legend(fontsize=8)
    fig.suptitle(title)
    return _save(plt, fig, png)


def plot_tokens(runs: list[dict[str, Any]], png: str | Path, title: str, per_row: int = 16) -> Path:
    """One block per token (text above, id below), in order, wrapped ``per_row`` to a line;
    green = trained (loss mask 1), grey = context, blue outline = a chat or tool marker."""
    plt = _pyplot()
    from matplotlib.patches import Rectangle

    tokens = [(tid, text, run["mask"]) for run in runs for tid, text in run["tokens"]]
    rows = (len(tokens) + per_row - 1) // per_row
    fig, ax = plt.subplots(figsize=(per_row * 0.95, rows * 0.62 + 0.8))
    for i, (tid, text, mask) in enumerate(tokens):
        x, y = i % per_row, rows - 1 - i // per_row
        marker = text in MARKERS
        ax.add_patch(Rectangle((x + 0.03, y * 1.0 + 0.05), 0.94, 0.9, facecolor="#b7e4b0" if mask else "#e6e6e6",
                               edgecolor="tab:blue" if marker else "white", linewidth=1.5 if marker else 0.5))
        shown = _printable(text).replace(" ", "\u2423").replace("$", "\\$")
        shown = shown if len(shown) <= 12 else shown[:11] + "…"
        ax.text(x + 0.5, y + 0.62, shown, ha="center", va="center", fontsize=6.5, family="monospace")
        ax.text(x + 0.5, y + 0.25, str(tid), ha="center", va="center", fontsize=5.5, color="#555555")
    ax.set_xlim(0, per_row)
    ax.set_ylim(0, rows)
    ax.axis("off")
    ax.set_title(title + "  (green: trained tokens, loss mask 1; grey: context; blue outline: markers; \u2423 = space)", fontsize=9)
    return _save(plt, fig, png)
