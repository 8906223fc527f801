"""Per tool call (``overhead.py`` runs it): astuner's sandboxed Python tool against AgentScope's.

``print(1)`` and a GSM8K-style computation go through astuner's and AgentScope's
``execute_python_code`` and a bare ``python -c`` subprocess (the floor), interleaved ABCABC; a
diagnostic row (the floor with a no-op ``preexec_fn``) shows where astuner's extra time goes.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import agentscope.tool
from agentscope.tool import ToolResponse
from overhead_common import GSM8K_CODE, md_table, stats

import astuner.tool


async def bare_python(code: str, **kwargs: Any) -> str:
    """The floor: start an interpreter with the code and collect its output, nothing else."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, **kwargs
    )
    stdout, _ = await proc.communicate()
    return f"<stdout>{stdout.decode()}</stdout>"


async def bare_python_preexec(code: str) -> str:
    """Diagnostic, not a tool: the floor plus a no-op ``preexec_fn``. Any ``preexec_fn`` makes
    ``subprocess`` fork the whole parent instead of using ``vfork``/``posix_spawn``; astuner's
    sandbox needs one for ``setrlimit``, and this row shows what that alone costs."""
    return await bare_python(code, preexec_fn=lambda: None)


def tool_text(tool: Callable[[str], Awaitable[ToolResponse]]) -> Callable[[str], Awaitable[str]]:
    async def call(code: str) -> str:
        response = await tool(code)
        return response.content[0]["text"]

    return call


TOOL_VARIANTS: dict[str, Callable[[str], Awaitable[str]]] = {
    "bare `python -c` (floor)": bare_python,
    "bare `python -c` + no-op `preexec_fn` (diagnostic)": bare_python_preexec,
    "agentscope `execute_python_code`": tool_text(agentscope.tool.execute_python_code),
    "astuner `execute_python_code`": tool_text(astuner.tool.execute_python_code),
}
TOOL_CODES = {"`print(1)`": ("print(1)", "1\n"), "GSM8K arithmetic (6 lines)": (GSM8K_CODE, "18\n")}


async def bench_tools(repeats: int) -> dict[str, dict[str, list[float]]]:
    results: dict[str, dict[str, list[float]]] = {}
    for label, (code, expected) in TOOL_CODES.items():
        times: dict[str, list[float]] = {name: [] for name in TOOL_VARIANTS}
        for round_ in range(repeats + 1):
            for name, run in TOOL_VARIANTS.items():
                start = time.perf_counter()
                text = await run(code)
                elapsed = (time.perf_counter() - start) * 1e3
                if f"<stdout>{expected}</stdout>" not in text:
                    raise RuntimeError(f"{name} on {label}: unexpected output {text!r}")
                if round_:  # round 0 is the warm-up
                    times[name].append(elapsed)
        results[label] = times
        print(f"tools: {label} done", file=sys.stderr)
    return results


def rss_mb() -> int | None:
    """This process's resident memory: forking (what a ``preexec_fn`` forces) costs time in proportion to it."""
    try:
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") >> 20
    except (OSError, ValueError, IndexError):
        return None


def tool_table(results: dict[str, dict[str, list[float]]], repeats: int, rss: int | None) -> str:
    floor_name = next(iter(TOOL_VARIANTS))
    rows = []
    for label, times in results.items():
        floor = statistics.median(times[floor_name])
        for name, values in times.items():
            s = stats(values)
            rows.append([label, name, f"{s['p50']:.1f}", f"{s['p95']:.1f}", f"{s['p50'] / floor:.2f}", f"{s['p50'] - floor:+.1f}"])
    return "\n".join([
        f"Sequential calls, interleaved in the order listed, {repeats} timed rounds after one warm-up, "
        f"from a parent process of {rss if rss is not None else '?'} MB resident (tokenizer loaded). Times in ms.",
        "",
        *md_table(["code", "variant", "p50", "p95", "p50 × floor", "p50 − floor"], rows),
    ])
