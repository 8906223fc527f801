"""Where a rollout's flagged bad cases happened: the LLM call, the token span, the message.

Why: a flag such as ``malformed_tool_call`` says that a rollout went wrong somewhere; judging it
needs the turn and the tokens. A rollout record keeps no per-call results, but its samples keep
every generated token: each maximal run of trained tokens (``loss_mask`` 1) of a sample is one LLM
call's completion (``astuner.samples``). ``locate_bad_cases`` rebuilds each completion's text from
the per-token texts and runs the detectors the rollout ran (the tool-call parser,
``task_judge.bad_cases``, ``turn_problems``, ``madness``) on it, call by call, so a location is a
call where the detector itself fires; within the call it narrows to the part that fired (the
``<tool_call>`` block that did not parse, the control token, the early answer). Python tool
results with an empty ``<stdout>`` are found in the untrained tokens.

Only flags set in the record are located. A set flag that fires nowhere in the tokens (or one this
module does not know) is returned with a note and no location, never dropped.

Not guaranteed:

- text rebuilt from per-token decodes may differ from the engine's own decode where a character
  is split across tokens; a last generated token that looks like a control token (``<|im_end|>``)
  is taken as the end of turn and left out of the text, as the model tuner leaves out its stop token;
- the tools a call offered are read from a Hermes-style ``<tools>`` block of its prompt (Qwen's
  templates); without one, ``invalid_tool_call`` is not located. ``tool_choice`` is not recorded,
  so every completion is parsed for tool calls;
- whether non-ASCII text was allowed (a madness modifier) is not recorded: ``nonsense`` is located
  with it allowed, and only when that finds nothing, without;
- calls of samples dropped by ``max_sample_per_task``, or cut by ``max_response_length``, are not there;
- ``call`` counts completions sample by sample: it is the rollout's call order when the samples'
  calls do not interleave (one conversation). A message index is given only when the record has
  as many assistant messages as completions (call k is the k-th assistant message);
- a tool result that a later sample repeats in its prompt (the history re-rendered after a
  timeline break) is located once, where it first appears (same place among results, same text).
"""

from __future__ import annotations

import bisect
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from astuner.logview.store import rollout_advantage
from astuner.schema import CallRecord
from astuner.task_judge.bad_cases import FINISH_TOOL_NAMES, answers_before_tool_response, message_text
from astuner.task_judge.madness import MADNESS_CHECKS, detect_madness
from astuner.task_judge.turn_problems import detect_turn_problems, invalid_call
from astuner.tool_call_parser import parse_tool_calls

_END_OF_TURN = re.compile(r"<\|[A-Za-z0-9_]+\|>|</s>|<eos>|<end_of_turn>")
_BLOCK = re.compile(r"<tool_call>.*?(?:</tool_call>|\Z)", re.S)
_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
CONTROL_TOKEN = re.compile(r"<\|[A-Za-z0-9_]+\|>")
"""The text ``turn_problems`` counts as a control token written by the model (same pattern)."""
TOOL_RESPONSE_TAG = re.compile(r"</?tool_response>")
"""The tag ``turn_problems`` counts as a spoofed tool response (same pattern)."""
_RESULT = re.compile(r"<returncode>.*?</returncode>\s*<stdout>(.*?)</stdout>", re.S)
_TOOLS = re.compile(r"<tools>\s*(.*?)\s*</tools>", re.S)


@dataclass
class Completion:
    """One call's generated tokens in a sample: ``[start, end)``, and its text without the end of turn."""

    sample: int
    call: int
    start: int
    end: int
    text: str
    starts: list[int]
    """Character offset in ``text`` of each token from ``start`` on (for mapping text back to tokens)."""
    record: CallRecord

    def tokens(self, chars: tuple[int, int] | None) -> tuple[int, int]:
        """The token span ``[start, end)`` covering the character span ``chars`` (None: the whole call)."""
        if chars is None or chars[1] <= chars[0]:
            return self.start, self.end
        first = bisect.bisect_right(self.starts, chars[0]) - 1
        last = bisect.bisect_right(self.starts, chars[1] - 1) - 1
        return self.start + max(first, 0), self.start + last + 1


def sample_texts(sample: Mapping) -> list[str]:
    """The text of each token of a sample (``[id]`` where the record has none), as the page shows them."""
    ids = sample.get("token_ids") or []
    texts = sample.get("tokens") or []
    return [texts[i] if i < len(texts) and isinstance(texts[i], str) else f"[{t}]" for i, t in enumerate(ids)]


def completions(record: Mapping) -> list[Completion]:
    """Every completion of every sample, in order, each parsed as the model tuner parsed it."""
    out: list[Completion] = []
    for s, sample in enumerate(record.get("samples") or []):
        texts, mask = sample_texts(sample), sample.get("loss_mask") or []
        blocks = list(_TOOLS.finditer("".join(texts)))
        i, pos = 0, 0
        while i < len(texts):
            if not (i < len(mask) and mask[i]):
                pos += len(texts[i])
                i += 1
                continue
            j = i
            while j < len(texts) and j < len(mask) and mask[j]:
                j += 1
            body = texts[i:j - 1] if _END_OF_TURN.fullmatch(texts[j - 1]) else texts[i:j]
            starts = [0]
            for t in texts[i:j - 1]:
                starts.append(starts[-1] + len(t))
            text = "".join(body)
            offered = _offered_tools([b for b in blocks if b.end() <= pos])
            out.append(Completion(s, len(out), i, j, text, starts, _call_record(text, offered)))
            pos += starts[-1] + len(texts[j - 1])
            i = j
    return out


def _call_record(text: str, tools: list[dict] | None) -> CallRecord:
    parsed = parse_tool_calls(text)
    return CallRecord(
        prompt_ids=[], completion_ids=[], logprobs=[], finish_reason="", response_text=text,
        reply_text=parsed.text, tools=tools, parsed_tool_calls=parsed.tool_calls,
        malformed_tool_call=parsed.malformed, repaired_tool_call=parsed.repaired,
    )


def _offered_tools(before: list[re.Match]) -> list[dict] | None:
    """The tool schemas (one JSON object a line) of the last ``<tools>`` block before a completion, if any."""
    if not before:
        return None
    tools = []
    for line in before[-1].group(1).splitlines():
        try:
            tool = json.loads(line)
        except ValueError:
            continue
        if isinstance(tool, dict):
            tools.append(tool)
    return tools or None


Span = tuple[int, int]


def _blocks(c: Completion, keep: Callable[[str], bool]) -> list[Span]:
    return [m.span() for m in _BLOCK.finditer(c.text) if keep(m.group(0))]


def _malformed(c: Completion) -> list[Span] | None:
    if not c.record.malformed_tool_call:
        return None
    spans = _blocks(c, lambda b: parse_tool_calls(b).malformed)
    return spans or [m.span() for m in re.finditer("</tool_call>", c.text)] or [(0, 0)]


def _repaired(c: Completion) -> list[Span] | None:
    if not c.record.repaired_tool_call:
        return None
    return _blocks(c, lambda b: parse_tool_calls(b).repaired) or [(0, 0)]


def _early_answer(c: Completion) -> list[Span] | None:
    if not answers_before_tool_response(c.record):
        return None
    finish = _blocks(c, lambda b: any(t["name"] in FINISH_TOOL_NAMES for t in parse_tool_calls(b).tool_calls))
    if finish:
        return finish
    outside = _BLOCK.sub(lambda m: " " * len(m.group(0)), c.text)
    return [(m.start(), _closing_brace(outside, m.end())) for m in _BOXED.finditer(outside)] or [(0, 0)]


def _closing_brace(text: str, pos: int) -> int:
    depth = 1
    for i in range(pos, len(text)):
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        if depth == 0:
            return i + 1
    return len(text)


def _turn_problem(name: str, pattern: re.Pattern | None = None) -> Callable[[Completion], list[Span] | None]:
    def find(c: Completion) -> list[Span] | None:
        if not detect_turn_problems([c.record])[name]:
            return None
        return ([m.span() for m in pattern.finditer(c.text)] if pattern is not None else []) or [(0, 0)]

    return find


def _invalid(c: Completion) -> list[Span] | None:
    if not invalid_call(c.record):
        return None
    tools = c.record.tools
    return _blocks(c, lambda b: invalid_call(_call_record(b, tools))) or [(0, 0)]


def _madness(name: str, allow_non_ascii: bool) -> Callable[[Completion], list[Span] | None]:
    checklist = [name, "allow_non_ascii"] if allow_non_ascii else [name]

    def find(c: Completion) -> list[Span] | None:
        if not detect_madness([c.record], checklist)[name]:
            return None
        if name == "wrong_toolcall":
            return _blocks(c, lambda b: parse_tool_calls(b).malformed) or [(0, 0)]
        return [(0, 0)]

    return find


CALL_FLAGS: dict[str, tuple[Callable[[Completion], list[Span] | None], str]] = {
    "malformed_tool_call": (_malformed, "the <tool_call> block that did not parse"),
    "repaired_tool_call": (_repaired, "the <tool_call> block accepted only after a repair"),
    "answer_before_tool_response": (_early_answer, "the final answer, given before the tool responded"),
    "empty_reply": (_turn_problem("empty_reply"), "a completion with no text and no tool call"),
    "special_token_in_reply": (_turn_problem("special_token_in_reply", CONTROL_TOKEN), "a control token written as text"),
    "spoofed_tool_response": (_turn_problem("spoofed_tool_response", TOOL_RESPONSE_TAG), "a <tool_response> tag the model wrote"),
    "invalid_tool_call": (_invalid, "a tool call that does not fit the tools offered"),
}
"""Flags decided per call: how to find them in one completion, and what the span shows."""


def _locate_calls(flag: str, calls: list[Completion], messages: list[int] | None) -> list[dict[str, Any]]:
    if flag in CALL_FLAGS:
        finders, what = [CALL_FLAGS[flag][0]], CALL_FLAGS[flag][1]
    else:  # a madness check: with non-ASCII allowed first (see the module docstring)
        finders, what = [_madness(flag, True), _madness(flag, False)], f"the completion that failed the {flag} check"
    for find in finders:
        found = []
        for c in calls:
            for chars in find(c) or []:
                start, end = c.tokens(chars)
                found.append({
                    "sample": c.sample, "call": c.call, "start": start, "end": end,
                    "call_start": c.start, "call_end": c.end, "what": what,
                    "message": messages[c.call] if messages else None,
                })
        if found:
            return found
    return []


def _empty_stdouts(record: Mapping, calls: list[Completion]) -> list[dict[str, Any]]:
    """Python tool results whose ``<stdout>`` is blank, in the untrained tokens of each sample."""
    result_msgs = [
        i for i, m in enumerate(record.get("messages") or [])
        if isinstance(m, Mapping) and m.get("role") == "tool" and _RESULT.search(message_text(m.get("content")))
    ]
    seen: set[tuple[int, str]] = set()
    found = []
    for s, sample in enumerate(record.get("samples") or []):
        texts, mask = sample_texts(sample), sample.get("loss_mask") or []
        starts, pos = [], 0
        for t in texts:
            starts.append(pos)
            pos += len(t)
        k = 0
        for m in _RESULT.finditer("".join(texts)):
            first, last = bisect.bisect_right(starts, m.start()) - 1, bisect.bisect_right(starts, m.end() - 1) - 1
            if any(i < len(mask) and mask[i] for i in range(first, last + 1)):
                continue  # written by the model, not a tool result
            key, k = (k, m.group(0)), k + 1
            if m.group(1).strip() or key in seen:
                continue
            seen.add(key)
            nxt = next((c for c in calls if c.sample == s and c.start > last), None)
            found.append({
                "sample": s, "call": nxt.call if nxt else None, "start": first, "end": last + 1,
                "call_start": None, "call_end": None, "what": "a Python tool result with an empty <stdout>",
                "message": result_msgs[key[0]] if key[0] < len(result_msgs) else None,
            })
    return found


def locate_bad_cases(record: dict[str, Any]) -> dict[str, Any]:
    """``{advantage, bad_cases: [{flag, kind, locations, note}]}`` for one rollout record.

    A location is ``{sample, call, start, end, call_start, call_end, message, what}``: token span
    ``[start, end)`` of sample ``sample``, the completion's own span (None for a tool result), the
    index in ``messages`` when known (else None), and a phrase saying what the span shows.
    """
    calls = completions(record)
    assistants = [i for i, m in enumerate(record.get("messages") or [])
                  if isinstance(m, Mapping) and m.get("role") == "assistant"]
    messages = assistants if len(assistants) == len(calls) else None
    flags = [(k, "bad_case") for k, v in (record.get("bad_cases") or {}).items() if v]
    flags += [(k, "madness") for k, v in (record.get("madness") or {}).items() if v]
    out = []
    for flag, kind in flags:
        if flag == "empty_tool_stdout":
            locations = _empty_stdouts(record, calls)
        elif flag in CALL_FLAGS or flag in MADNESS_CHECKS:
            locations = _locate_calls(flag, calls, messages)
        else:
            out.append({"flag": flag, "kind": kind, "locations": [], "note": "this viewer does not know this flag"})
            continue
        note = None if locations else "not found in the recorded tokens (see the limits in docs/logview.md)"
        out.append({"flag": flag, "kind": kind, "locations": locations, "note": note})
    return {"advantage": rollout_advantage(record), "bad_cases": out}
