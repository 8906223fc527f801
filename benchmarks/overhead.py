"""What astuner costs on top of plain AgentScope, per LLM call and per tool call.

Why this exists: astuner sits between a ReActAgent and the inference engine (rendering prompts
token-exactly, parsing tool calls, recording every token) and replaces AgentScope's Python tool
with a sandboxed one. Both run on every step of every rollout, so their cost must be known and
small next to generation. This script measures them against floors on the same machine:

1. Per LLM call: one ReActAgent (DashScope formatter, in-memory memory, a fixed-output tool,
   ``structured_model``) plays an episode of K tool calls and a final ``generate_response``,
   driven (a) by a bare ``ChatModelBase`` that hands back prebuilt tool-use blocks (the floor: no
   template, no tokenizer) and (b) by ``ModelTuner`` + ``ScriptedEngine`` replaying the same turns
   as Hermes ``<tool_call>`` text, followed by ``build_samples``. Episodes are interleaved.
2. Per tool call: ``print(1)`` and a GSM8K-style computation through astuner's and AgentScope's
   ``execute_python_code`` and a bare ``python -c`` subprocess (the floor), interleaved ABCABC;
   a diagnostic row (the floor with a no-op ``preexec_fn``) shows where astuner's extra time goes.

The LLM half is ``overhead_llm.py``, the tool half ``overhead_tools.py``; this script runs both.
Run ``python benchmarks/overhead.py [--repeats N] [--quick] [--json PATH]``. Markdown goes to
stdout, progress to stderr; nothing is written to disk except ``--json`` (scratch files for the
scripted engine live in a temporary directory that is removed).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
from pathlib import Path

# The halves sit next to this script; put its folder on the path when it runs as ``python -m``.
sys.path.insert(0, str(Path(__file__).resolve().parent))

import agentscope  # noqa: E402
from overhead_llm import Episode, bench_llm, llm_tables  # noqa: E402
from overhead_tools import bench_tools, rss_mb, tool_table  # noqa: E402


def machine() -> str:
    try:
        names = [ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("model name")]
    except OSError:
        names = []
    model = names[0] if names else platform.processor() or platform.machine()
    return (
        f"{model}, {os.cpu_count()} logical CPUs; Python {platform.python_version()}, "
        f"agentscope {agentscope.__version__}, {platform.system()} {platform.release()}"
    )


def main(argv: list[str] | None = None) -> int:
    """Parse flags, run both benchmarks, print markdown (and optionally write the raw numbers)."""
    parser = argparse.ArgumentParser(description="astuner overhead per LLM call and per tool call")
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats per variant (default 30, --quick 5)")
    parser.add_argument("--quick", action="store_true", help="5 repeats unless --repeats is given")
    parser.add_argument("--long-tool-calls", type=int, default=6, help="tool calls in the long episode (default 6)")
    parser.add_argument("--json", type=Path, default=None, help="also write every measurement to this file")
    args = parser.parse_args(argv)
    # Read by each agent when it is built: keeps agent printing out of both drivers' times.
    os.environ["AGENTSCOPE_DISABLE_CONSOLE_OUTPUT"] = "true"
    repeats = args.repeats if args.repeats is not None else (5 if args.quick else 30)
    if repeats < 1 or args.long_tool_calls < 2:
        parser.error("--repeats must be >= 1 and --long-tool-calls >= 2")
    episodes = [Episode(1), Episode(args.long_tool_calls)]
    with tempfile.TemporaryDirectory(prefix="astuner_bench_") as scratch:
        llm = asyncio.run(bench_llm(episodes, repeats, Path(scratch)))
    tools = asyncio.run(bench_tools(repeats))
    rss = rss_mb()
    print(f"Machine: {machine()}. Repeats: {repeats}.\n\n### Per LLM call\n\n{llm_tables(llm)}\n")
    print(f"### Per tool call\n\n{tool_table(tools, repeats, rss)}")
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "repeats": repeats, "rss_mb": rss, "llm": llm, "tools": tools}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
