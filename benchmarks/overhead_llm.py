"""Per LLM call (``overhead.py`` runs it): astuner's model proxy against a bare model.

One ReActAgent (DashScope formatter, in-memory memory, a fixed-output tool, ``structured_model``)
plays an episode of K tool calls and a final ``generate_response``, driven (a) by a bare
``ChatModelBase`` that hands back prebuilt tool-use blocks (the floor: no template, no tokenizer)
and (b) by ``ModelTuner`` + ``ScriptedEngine`` replaying the same turns as Hermes ``<tool_call>``
text, followed by ``build_samples``. Episodes are interleaved.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentscope.agent import ReActAgent
from agentscope.formatter import DashScopeChatFormatter
from agentscope.memory import InMemoryMemory
from agentscope.message import Msg, TextBlock, ToolUseBlock
from agentscope.model import ChatModelBase, ChatResponse
from agentscope.tool import Toolkit, ToolResponse
from overhead_common import GSM8K_CODE, md_table, stats
from pydantic import BaseModel, Field

from astuner.chat_template import ChatTemplate
from astuner.engine.base import Completion, SamplingParams
from astuner.engine.scripted_engine import ScriptedEngine
from astuner.model_tuner import ModelTuner, ModelTunerSettings
from astuner.samples import build_samples

REPO = Path(__file__).resolve().parent.parent

SYSTEM_PROMPT = (
    "You are an agent that solves math word problems. You can write Python code and run it with "
    "the execute_python_code tool; print the values you need. Give your final answer inside \\boxed{}."
)
QUESTION = (
    "Janet's ducks lay 16 eggs per day. She eats three for breakfast every morning and bakes muffins "
    "for her friends every day with four. She sells the remainder for $2 per fresh duck egg. "
    "How much in dollars does she make every day?"
)
TOOL_RESULT = "<returncode>0</returncode><stdout>18\n</stdout><stderr></stderr>"
ANSWER = "\\boxed{18}"
TOOL_TEXT = "I will compute this with Python."
FINAL_TEXT = "The tool printed 18, so the answer is \\boxed{18}."


class FinalResult(BaseModel):
    result: str = Field(description="Your final answer to the problem, written inside \\boxed{}.")


async def fixed_python(code: str, timeout: float = 300) -> ToolResponse:
    """Run Python code and return its exit code, standard output and standard error.

    Args:
        code (`str`):
            The Python code to run.
        timeout (`float`, defaults to `300`):
            The longest time in seconds the code may run.
    """
    return ToolResponse(content=[TextBlock(type="text", text=TOOL_RESULT)])


@dataclass(frozen=True)
class Episode:
    """K tool calls, then the structured answer: K + 1 model calls."""

    tool_calls: int

    @property
    def calls(self) -> int:
        return self.tool_calls + 1

    @property
    def label(self) -> str:
        return f"{self.tool_calls} tool call{'s' if self.tool_calls > 1 else ''} + answer"

    def turns(self) -> list[tuple[str, str, dict]]:
        """(text, tool name, arguments) of each model turn; both drivers play exactly these."""
        step = (TOOL_TEXT, "execute_python_code", {"code": GSM8K_CODE})
        return [step] * self.tool_calls + [(FINAL_TEXT, "generate_response", {"result": ANSWER})]

    def hermes_replies(self) -> list[str]:
        """The same turns as the text a Qwen model would generate."""
        return [
            f"{text}\n<tool_call>\n{json.dumps({'name': name, 'arguments': args})}\n</tool_call>"
            for text, name, args in self.turns()
        ]


class _TimedCalls:
    """Mixin that records the wall time of each model call (what the model object costs the agent)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.call_ms: list[float] = []

    async def __call__(self, *args: Any, **kwargs: Any) -> ChatResponse:
        start = time.perf_counter()
        response = await super().__call__(*args, **kwargs)
        self.call_ms.append((time.perf_counter() - start) * 1e3)
        return response


class FloorModel(ChatModelBase):
    """Returns the episode's turns as prebuilt blocks: no template, no tokenizer, no parsing."""

    def __init__(self, turns: list[tuple[str, str, dict]]) -> None:
        super().__init__(model_name="floor", stream=False)
        self.turns = turns
        self.index = 0

    async def __call__(self, messages: list[dict], tools: list[dict] | None = None, **kwargs: Any) -> ChatResponse:
        text, name, args = self.turns[min(self.index, len(self.turns) - 1)]
        self.index += 1
        call = ToolUseBlock(type="tool_use", id=f"call_{uuid.uuid4().hex[:16]}", name=name, input=dict(args))
        return ChatResponse(content=[TextBlock(type="text", text=text), call])


class TimedFloor(_TimedCalls, FloorModel):
    pass


class TimedTuner(_TimedCalls, ModelTuner):
    pass


class TimedEngine:
    """Wraps the scripted engine to separate its own work (tokenizing the reply) from the proxy's."""

    def __init__(self, inner: ScriptedEngine) -> None:
        self.inner = inner
        self.call_ms: list[float] = []

    async def generate(self, prompt_ids: list[int], params: SamplingParams, *, context: dict | None = None) -> Completion:
        start = time.perf_counter()
        completion = await self.inner.generate(prompt_ids, params, context=context)
        self.call_ms.append((time.perf_counter() - start) * 1e3)
        return completion


async def run_agent(model: ChatModelBase, episode: Episode) -> Msg:
    toolkit = Toolkit()
    toolkit.register_tool_function(fixed_python, func_name="execute_python_code")
    agent = ReActAgent(
        name="math_react_agent", sys_prompt=SYSTEM_PROMPT, model=model, formatter=DashScopeChatFormatter(),
        toolkit=toolkit, memory=InMemoryMemory(), max_iters=episode.calls + 2,
    )
    agent.set_console_output_enabled(False)
    return await agent.reply(Msg("user", QUESTION, "user"), structured_model=FinalResult)


def check_episode(reply: Msg, model: _TimedCalls, episode: Episode, driver: str) -> None:
    """A benchmark of a broken episode would measure the wrong thing: stop instead."""
    if len(model.call_ms) != episode.calls or (reply.metadata or {}).get("result") != ANSWER:
        got = f"{len(model.call_ms)} calls (expected {episode.calls}), metadata {reply.metadata!r}"
        raise RuntimeError(f"{driver} / {episode.label}: {got}")


async def floor_episode(episode: Episode) -> dict[str, Any]:
    start = time.perf_counter()
    model = TimedFloor(episode.turns())
    reply = await run_agent(model, episode)
    total = (time.perf_counter() - start) * 1e3
    check_episode(reply, model, episode, "floor")
    return {"episode_ms": total, "call_ms": model.call_ms}


async def astuner_episode(episode: Episode, engine: TimedEngine, template: ChatTemplate) -> dict[str, Any]:
    engine.call_ms = []
    start = time.perf_counter()
    model = TimedTuner(engine, template, ModelTunerSettings(), context={"task_id": "bench", "query": QUESTION})
    reply = await run_agent(model, episode)
    before_samples = time.perf_counter()
    samples, _ = build_samples(
        model.calls, reward=1.0, group_id="bench", rollout_id="bench-0", max_sample_per_task=30, max_response_length=15000
    )
    end = time.perf_counter()
    check_episode(reply, model, episode, "astuner")
    if len(samples) != 1 or model.timeline_breaks:
        raise RuntimeError(f"astuner / {episode.label}: {len(samples)} samples, {model.timeline_breaks} timeline breaks")
    return {
        "episode_ms": (end - start) * 1e3,
        "call_ms": model.call_ms,
        "engine_ms": list(engine.call_ms),
        "samples_ms": (end - before_samples) * 1e3,
        "prompt_tokens": [len(c.prompt_ids) for c in model.calls],
    }


def load_tokenizer(scratch: Path) -> tuple[Any, str]:
    """The real Qwen2.5 tokenizer when present (its template is what users train with), else the tiny one."""
    from transformers import AutoTokenizer

    env = os.environ.get("ASTUNER_TEST_TOKENIZERS")
    folder = (Path(env) if env else REPO.parent / "shared" / "tokenizers") / "qwen2_5"
    if (folder / "tokenizer.json").exists():
        return AutoTokenizer.from_pretrained(str(folder)), f"Qwen2.5 ({folder})"
    from astuner.tiny_model import build_tiny_model

    path = build_tiny_model(scratch / "tiny")
    return AutoTokenizer.from_pretrained(str(path)), "astuner tiny model (real Qwen2.5 tokenizer not found)"


async def bench_llm(episodes: list[Episode], repeats: int, scratch: Path) -> dict[str, Any]:
    tokenizer, tokenizer_name = load_tokenizer(scratch)
    template = ChatTemplate(tokenizer)
    engines = {}
    for ep in episodes:
        script = scratch / f"replies_{ep.tool_calls}.jsonl"
        script.write_text(json.dumps({"default": True, "replies": ep.hermes_replies()}) + "\n")
        engines[ep] = TimedEngine(ScriptedEngine(script, tokenizer, template.turn.end_of_turn_id))
    runs: dict[str, dict[str, list[dict]]] = {ep.label: {"floor": [], "astuner": []} for ep in episodes}
    for round_ in range(repeats + 1):
        for ep in episodes:
            floor = await floor_episode(ep)
            tuned = await astuner_episode(ep, engines[ep], template)
            if round_:  # round 0 is the warm-up
                runs[ep.label]["floor"].append(floor)
                runs[ep.label]["astuner"].append(tuned)
        print(f"llm round {round_}/{repeats}", file=sys.stderr)
    return {"tokenizer": tokenizer_name, "episodes": {ep.label: ep.calls for ep in episodes}, "runs": runs}


def llm_tables(result: dict[str, Any]) -> str:
    names = {"floor": "bare `ChatModelBase` (floor)", "astuner": "`ModelTuner` + `ScriptedEngine` + `build_samples`"}
    main_rows, overhead_rows = [], []
    for label, calls in result["episodes"].items():
        runs = result["runs"][label]
        floor_p50 = statistics.median(r["episode_ms"] for r in runs["floor"])
        for driver in ("floor", "astuner"):
            ep = stats([r["episode_ms"] for r in runs[driver]])
            call = stats([ms for r in runs[driver] for ms in r["call_ms"]])
            main_rows.append([
                label, names[driver], str(calls), f"{ep['p50']:.2f}", f"{ep['p95']:.2f}", f"{ep['p50'] / calls:.2f}",
                f"{call['p50']:.3f}", f"{call['p95']:.3f}", f"{ep['p50'] / floor_p50:.2f}",
            ])
        tuned = runs["astuner"]
        tuned_p50 = statistics.median(r["episode_ms"] for r in tuned)
        overhead_rows.append([
            label, str(calls), str(tuned[0]["prompt_tokens"][-1]), f"{(tuned_p50 - floor_p50) / calls:.2f}",
            f"{statistics.median(ms for r in tuned for ms in r['engine_ms']):.3f}",
            f"{statistics.median(r['samples_ms'] for r in tuned):.3f}",
        ])
    longest = max(result["episodes"], key=result["episodes"].get)
    runs = result["runs"][longest]
    position_rows = []
    for i in range(result["episodes"][longest]):
        tuned = stats([r["call_ms"][i] for r in runs["astuner"]])
        floor = statistics.median(r["call_ms"][i] for r in runs["floor"])
        tokens = runs["astuner"][0]["prompt_tokens"][i]
        position_rows.append([str(i + 1), str(tokens), f"{tuned['p50']:.3f}", f"{tuned['p95']:.3f}", f"{floor:.3f}"])
    return "\n".join([
        f"Tokenizer: {result['tokenizer']}. Times in ms. *Model call* is the time inside the model "
        "object's `__call__`; *episode* is agent construction + `reply()` (+ `build_samples` for astuner).",
        "",
        *md_table(["episode", "driver", "calls", "episode p50", "episode p95", "episode/call p50",
                   "model call p50", "model call p95", "episode × floor"], main_rows),
        "",
        "astuner overhead per LLM call = (astuner episode p50 − floor episode p50) / calls; the scripted "
        "engine's reply tokenization (a real engine returns ids instead) is included and shown separately.",
        "",
        *md_table(["episode", "calls", "last prompt (tokens)", "overhead/call p50 (ms)",
                   "of which scripted engine p50 (ms/call)", "build_samples p50 (ms)"], overhead_rows),
        "",
        f"Model call time by position in the longest episode ({longest}): does the cost grow with the conversation?",
        "",
        *md_table(["call", "prompt (tokens)", "`ModelTuner` call p50 (ms)", "`ModelTuner` call p95 (ms)",
                   "floor call p50 (ms)"], position_rows),
    ])
