"""A scripted teacher: an astuner Engine that reads the conversation and answers like a tool-using model.

Why: the cold-start policy must begin as an *imperfect but competent* tool user, the situation of
the seed's section 4. A small model trained from scratch has no such habits, so it is supervised on
traces of this teacher, produced by the real ``ExampleMathLearn`` workflow with astuner's tool and
judge. The teacher plays the model's part from what the model tuner passes in ``context`` (``query``,
``rollout_id``, ``call_index`` and the ``messages`` of the call):

* **good**: calls ``execute_python_code`` with code that prints the result; after the tool
  responds, reads the printed value from ``<stdout>`` and answers with ``generate_response`` and
  ``\\boxed{N}``;
* **no_print** (seed bad case ``empty_tool_stdout``): the same code without ``print``; the tool
  prints nothing, so it guesses;
* **impatient** (``answer_before_tool_response``): the tool call and a guessed final answer in the
  same turn, before the tool's response;
* **malformed** (``malformed_tool_call``): a ``<tool_call>`` whose ``arguments`` is a string, which
  the parser rejects; the agent is told structured output is still required, and it guesses.

A guess is the first number of the question: wrong for every generated problem (the generator
makes sure), so each bad case costs the answer. The behaviour of a rollout is drawn once from
``TeacherRates`` with an RNG seeded by ``seed`` and the rollout id: reproducible, and different
across the rollouts of a group.

Not guaranteed: conversations the workflow never produces with this teacher (a second tool round,
an unknown query) get a guessed answer rather than an error.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from astuner.engine.base import Completion, SamplingParams
from experiments.tool_discipline.problems import Problem

BEHAVIOURS = ("good", "no_print", "impatient", "malformed")
BAD_CASE_OF = {"no_print": "empty_tool_stdout", "impatient": "answer_before_tool_response", "malformed": "malformed_tool_call"}

OPENING = "I will compute this with Python."
_STDOUT = re.compile(r"<stdout>(.*?)</stdout>", re.S)
_NUMBER = re.compile(r"\d+")

TAUGHT_BAD_CASES = {"no_print": "empty_tool_stdout", "impatient": "answer_before_tool_response",
                    "malformed": "malformed_tool_call"}
"""The teacher's bad behaviours and the bad case (``astuner.task_judge.bad_cases``) each one shows."""


@dataclass(frozen=True)
class TeacherRates:
    """Probability of each bad behaviour per rollout; the rest is ``good``."""

    no_print: float = 0.2
    impatient: float = 0.15
    malformed: float = 0.15

    def __post_init__(self) -> None:
        if min(self.no_print, self.impatient, self.malformed) < 0 or self.no_print + self.impatient + self.malformed > 1:
            raise ValueError(f"bad-case rates must be >= 0 and sum to <= 1, got {self}")

    def choose(self, u: float) -> str:
        """The behaviour for a uniform draw ``u`` in [0, 1)."""
        for name in ("no_print", "impatient", "malformed"):
            u -= getattr(self, name)
            if u < 0:
                return name
        return "good"


def tool_call(name: str, arguments: Any) -> str:
    """A Hermes tool-call block as the tiny model's chat template writes one."""
    return "<tool_call>\n" + json.dumps({"name": name, "arguments": arguments}) + "\n</tool_call>"


def final_answer(sentence: str, value: str) -> str:
    """A reply that states the answer and calls ``generate_response`` with it."""
    return f"{sentence} \\boxed{{{value}}}.\n" + tool_call("generate_response", {"result": f"\\boxed{{{value}}}"})


def guess_for(query: str) -> str:
    """The teacher's guess: the first number written in the question."""
    match = _NUMBER.search(query or "")
    return match.group(0) if match else "0"


def last_stdout(messages: list[dict]) -> str | None:
    """The stdout of the newest ``execute_python_code`` result, None when there is none yet."""
    for message in reversed(messages):
        if message.get("role") == "tool":
            match = _STDOUT.search(str(message.get("content", "")))
            return match.group(1).strip() if match else ""
    return None


def first_reply(behaviour: str, problem: Problem | None, query: str) -> str:
    """The first turn of a rollout: the tool call (well or badly made)."""
    code = problem.code if problem else f"print({guess_for(query)})"
    if behaviour == "no_print":
        return f"{OPENING}\n" + tool_call("execute_python_code", {"code": "result = " + code[len("print("):-1]})
    if behaviour == "malformed":
        return f"{OPENING}\n" + tool_call("execute_python_code", code)
    reply = f"{OPENING}\n" + tool_call("execute_python_code", {"code": code})
    if behaviour == "impatient":
        guess = guess_for(query)
        reply += "\n" + tool_call("generate_response", {"result": f"\\boxed{{{guess}}}"})
    return reply


def later_reply(messages: list[dict], query: str) -> str:
    """A turn after the first: answer from the tool's output, or guess when there is none."""
    stdout = last_stdout(messages)
    if stdout:
        return final_answer("The tool printed " + stdout + ", so the answer is", stdout)
    if stdout is None:
        return final_answer("The tool call failed, so I will guess:", guess_for(query))
    return final_answer("The tool printed nothing, so I will guess:", guess_for(query))


class TeacherEngine:
    """Replies as the module docstring describes; token ids from ``tokenizer``, logprobs 0.

    ``behaviour`` forces one behaviour for every rollout (tests, figures); otherwise each rollout's
    is drawn from ``rates``. ``transcripts`` maps each rollout id to its newest prompt + reply text
    (the prompt decoded from its ids), from which the tokenizer corpus is built.
    """

    def __init__(
        self,
        problems: Iterable[Problem],
        tokenizer: Any,
        end_of_turn_id: int,
        rates: TeacherRates = TeacherRates(),
        *,
        seed: int = 0,
        behaviour: str | None = None,
    ) -> None:
        if behaviour is not None and behaviour not in BEHAVIOURS:
            raise ValueError(f"behaviour must be one of {BEHAVIOURS}, got {behaviour!r}")
        self.problems = {p.question: p for p in problems}
        self.tokenizer = tokenizer
        self.end_of_turn_id = end_of_turn_id
        self.rates = rates
        self.seed = seed
        self.behaviour = behaviour
        self.transcripts: dict[str, str] = {}
        self.behaviours: dict[str, str] = {}

    def behaviour_for(self, rollout_id: str) -> str:
        """This rollout's behaviour (fixed for all its calls)."""
        if self.behaviour is not None:
            return self.behaviour
        if rollout_id not in self.behaviours:
            self.behaviours[rollout_id] = self.rates.choose(random.Random(f"{self.seed}:{rollout_id}").random())
        return self.behaviours[rollout_id]

    def reply(self, context: dict) -> str:
        """The reply text for one call."""
        query = str(context.get("query", ""))
        messages = list(context.get("messages") or [])
        rollout_id = str(context.get("rollout_id", ""))
        if int(context.get("call_index", 0)) == 0:
            return first_reply(self.behaviour_for(rollout_id), self.problems.get(query), query)
        return later_reply(messages, query)

    async def generate(self, prompt_ids: list[int], params: SamplingParams, *, context: dict | None = None) -> Completion:
        """The reply, tokenized, with the end-of-turn token appended (cut at ``params.max_tokens``)."""
        context = context or {}
        text = self.reply(context)
        ids = list(self.tokenizer.encode(text, add_special_tokens=False)) + [self.end_of_turn_id]
        finish = "stop"
        if len(ids) > params.max_tokens:
            ids, finish = ids[: params.max_tokens], "length"
        rollout_id = str(context.get("rollout_id", ""))
        self.transcripts[rollout_id] = self.tokenizer.decode(list(prompt_ids) + ids, skip_special_tokens=False)
        return Completion(token_ids=ids, logprobs=[0.0] * len(ids), finish_reason=finish)

    def close(self) -> None:
        """Nothing to release."""
