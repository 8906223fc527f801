"""What the overhead benchmark's two halves share: the GSM8K program and the table helpers."""

from __future__ import annotations

import math
import statistics

GSM8K_CODE = "eggs = 16\neaten = 3\nbaked = 4\nleft = eggs - eaten - baked\nprice = 2\nprint(left * price)\n"
"""The program of a GSM8K-style tool call: the agent's tool call and the tool benchmark's workload."""


def stats(values: list[float]) -> dict[str, float]:
    """Median and nearest-rank p95 (an observed value, no interpolation between samples)."""
    ordered = sorted(values)
    return {"p50": statistics.median(ordered), "p95": ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]}


def md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A markdown table; the first two columns are labels, the rest numbers (right-aligned)."""
    align = ["---" if i < 2 else "---:" for i in range(len(header))]
    return [f"| {' | '.join(cells)} |" for cells in (header, align, *rows)]
