"""Latency of one Python tool call: astuner's sandboxed tool (bwrap and the process fallback)
against AgentScope's unsandboxed ``execute_python_code`` and a bare ``python -c``.

What is measured, per variant, for two programs (``print(1)`` and a six-line GSM8K-style
computation): the wall time of one call as the agent sees it (from the coroutine call to the
returned text, checked for the expected output), and the wall time of 64 calls started at once
(``asyncio.gather``; the machine's cores are the limit).

How: sequential calls are interleaved — each round calls every variant once, in the listed order,
so background load and CPU frequency drift hit all variants alike; round 0 is a warm-up and not
timed. After every call (of any variant) the benchmark waits, untimed, until astuner's pool has
finished refilling and then 50 ms more, so no variant is timed while another's processes start or
exit: an agent's tool calls are separated by LLM generation, which gives the pool that time. A
separate *burst* row calls astuner's tool back-to-back with no gap, which drains the pool: its
worst case for sequential calls. A ballast (``--ballast-mb``, default 512) is allocated and touched in this
process first, so the parent is as large as a training process with a tokenizer loaded: a tool
that forks its parent pays for that, one that spawns does not.

Usage (from the repository root)::

    python benchmarks/sandbox_latency.py                 # 30 rounds, markdown on stdout
    python benchmarks/sandbox_latency.py --rounds 5      # a smoke run
    python benchmarks/sandbox_latency.py --json out.json # also every raw measurement

Not measured: programs that import heavy libraries (their import time is the same in every
variant), and the sandboxes' start-up cost, which the pool moves off the call path but which
still takes CPU (it shows in the burst row and in the 64-way wall time).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Awaitable, Callable

import agentscope
import agentscope.tool

import astuner.tool
from astuner.tool import ToolLimits, pool, use_limits
from astuner.tool.run import shutdown

GSM8K_CODE = "eggs = 16\neaten = 3\nbaked = 4\nleft = eggs - eaten - baked\nprice = 2\nprint(left * price)\n"
PROGRAMS = {"`print(1)`": ("print(1)", "1\n"), "GSM8K arithmetic (6 lines)": (GSM8K_CODE, "18\n")}


async def bare_python(code: str) -> str:
    """The floor: start an interpreter with the code and collect its output, nothing else."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    stdout, _ = await proc.communicate()
    return f"<stdout>{stdout.decode()}</stdout>"


async def agentscope_tool(code: str) -> str:
    response = await agentscope.tool.execute_python_code(code)
    return response.content[0]["text"]


def astuner_tool(isolation: str) -> Callable[[str], Awaitable[str]]:
    limits = ToolLimits(isolation=isolation)

    async def call(code: str) -> str:
        with use_limits(limits):
            response = await astuner.tool.execute_python_code(code)
        return response.content[0]["text"]

    return call


def variants() -> dict[str, Callable[[str], Awaitable[str]]]:
    out = {
        "bare `python -c` (floor)": bare_python,
        "agentscope `execute_python_code` (no sandbox)": agentscope_tool,
    }
    if shutil.which("bwrap"):
        out["astuner, isolation `bwrap`"] = astuner_tool("bwrap")
    out["astuner, isolation `process` (fallback)"] = astuner_tool("process")
    return out


async def quiesce() -> None:
    """Wait until no astuner sandbox is starting, then a little more for exits to finish."""
    svc = pool.service()
    deadline = time.monotonic() + 5.0
    while any(p.starting for p in list(svc.pools.values())) and time.monotonic() < deadline:
        await asyncio.sleep(0.005)
    await asyncio.sleep(0.05)


async def timed(call: Callable[[str], Awaitable[str]], code: str, expected: str, name: str) -> float:
    start = time.perf_counter()
    text = await call(code)
    elapsed = (time.perf_counter() - start) * 1e3
    if f"<stdout>{expected}</stdout>" not in text:
        raise RuntimeError(f"{name}: unexpected output {text[:300]!r}")
    return elapsed


async def sequential(rounds: int) -> dict[str, dict[str, list[float]]]:
    calls = variants()
    results: dict[str, dict[str, list[float]]] = {}
    for label, (code, expected) in PROGRAMS.items():
        times: dict[str, list[float]] = {name: [] for name in calls}
        for round_ in range(rounds + 1):
            for name, call in calls.items():
                elapsed = await timed(call, code, expected, name)
                await quiesce()
                if round_:
                    times[name].append(elapsed)
        results[label] = times
        print(f"sequential: {label} done", file=sys.stderr)
    return results


async def burst(rounds: int) -> dict[str, list[float]]:
    """astuner's tool called back-to-back (no gap for the pool to refill)."""
    out = {}
    for name, call in variants().items():
        if name.startswith("astuner"):
            await timed(call, "print(1)", "1\n", name)
            await asyncio.sleep(1.0)  # start from a full pool
            out[name] = [await timed(call, "print(1)", "1\n", name) for _ in range(rounds)]
    return out


async def concurrent(n: int, repeats: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for name, call in variants().items():
        walls = []
        for _ in range(repeats):
            await asyncio.sleep(1.0)  # let the previous variant's processes finish exiting
            start = time.perf_counter()
            texts = await asyncio.gather(*(call(f"print({i})") for i in range(n)))
            walls.append((time.perf_counter() - start) * 1e3)
            bad = [i for i, t in enumerate(texts) if f"<stdout>{i}\n</stdout>" not in t]
            if bad:
                raise RuntimeError(f"{name}: {len(bad)} of {n} concurrent calls gave wrong output, e.g. {texts[bad[0]][:200]!r}")
        out[name] = walls
        print(f"concurrent: {name} done", file=sys.stderr)
    return out


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def table(header: list[str], rows: list[list[str]]) -> str:
    align = ["---" if i < 2 else "---:" for i in range(len(header))]
    return "\n".join(f"| {' | '.join(r)} |" for r in (header, align, *rows))


def report(seq, bursts, conc, n: int) -> str:
    rows = []
    for label, times in seq.items():
        reference = statistics.median(times["agentscope `execute_python_code` (no sandbox)"])
        floor = statistics.median(times["bare `python -c` (floor)"])
        for name, values in times.items():
            p50 = statistics.median(values)
            rows.append([label, name, f"{p50:.1f}", f"{pct(values, 0.95):.1f}", f"{p50 / floor:.2f}", f"{p50 / reference:.2f}"])
    out = [table(["program", "variant", "p50 (ms)", "p95 (ms)", "p50 ÷ bare", "p50 ÷ agentscope"], rows), ""]
    out.append(table(["program", "variant", "p50 (ms)", "p95 (ms)", "max (ms)", "calls"], [
        ["`print(1)`, back-to-back", name, f"{statistics.median(v):.1f}", f"{pct(v, 0.95):.1f}", f"{max(v):.1f}", str(len(v))]
        for name, v in bursts.items()
    ]))
    out.append("")
    out.append(table([f"{n} concurrent `print(i)`", "variant", "wall p50 (ms)", "wall min (ms)", "wall max (ms)", "repeats"], [
        ["all at once", name, f"{statistics.median(v):.0f}", f"{min(v):.0f}", f"{max(v):.0f}", str(len(v))]
        for name, v in conc.items()
    ]))
    return "\n".join(out)


def machine() -> str:
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        model = next(line.split(":", 1)[1].strip() for line in lscpu.splitlines() if line.startswith("Model name"))
    except (OSError, StopIteration):
        model = platform.processor() or platform.machine()
    bwrap = shutil.which("bwrap")
    version = subprocess.run([bwrap, "--version"], capture_output=True, text=True).stdout.strip() if bwrap else "absent"
    return (f"{model}, {os.cpu_count()} logical CPUs; Linux {platform.release()}; Python {platform.python_version()}; "
            f"agentscope {agentscope.__version__}; {version}; running as uid {os.getuid()}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="latency of one Python tool call, sandboxed and not")
    parser.add_argument("--rounds", type=int, default=30, help="timed rounds of sequential calls (default 30)")
    parser.add_argument("--concurrent", type=int, default=64, help="calls started at once (default 64)")
    parser.add_argument("--concurrent-repeats", type=int, default=3, help="repeats of the concurrent batch (default 3)")
    parser.add_argument("--ballast-mb", type=int, default=512, help="memory this process allocates and touches first (default 512)")
    parser.add_argument("--json", type=Path, default=None, help="also write every measurement to this file")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.concurrent < 1 or args.concurrent_repeats < 1:
        parser.error("--rounds, --concurrent and --concurrent-repeats must be >= 1")
    ballast = bytearray(args.ballast_mb << 20)
    for i in range(0, len(ballast), 4096):
        ballast[i] = 1
    warnings.simplefilter("ignore", RuntimeWarning)  # the fallback's one-time warning is expected here

    async def run_all():
        return (await sequential(args.rounds), await burst(args.rounds),
                await concurrent(args.concurrent, args.concurrent_repeats))

    seq, bursts, conc = asyncio.run(run_all())
    shutdown()
    print(f"Machine: {machine()}. Parent ballast: {args.ballast_mb} MB. Rounds: {args.rounds}.\n")
    print(report(seq, bursts, conc, args.concurrent))
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "args": vars(args) | {"json": str(args.json)},
                                         "sequential": seq, "burst": bursts, "concurrent": conc}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
