"""Hermes-style tool calls: ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>`` in text.

A completion is split into its plain text and its tool calls. Near-JSON (single quotes, trailing
commas, a missing closing brace) is repaired with ``json_repair``; a block that still does not
yield ``{"name": str, "arguments": dict}`` is *malformed*: it stays in the text, and the parse says
why in a sentence the model can read (``problems``); ``ModelTuner`` answers each one with a tool
message and the judge counts it as a bad case. Parsing never raises on model output and
its time is bounded (property-tested with hypothesis in ``tests/test_tool_call_parser.py``):

* a block nested deeper than ``MAX_DEPTH`` brackets is malformed without being parsed (the JSON
  parsers would raise ``RecursionError`` on it and crash the rollout);
* a number longer than Python's integer-string limit (4300 digits) is invalid JSON, not a
  ``ValueError`` out of the parser;
* at most ``MAX_REPAIR_CHARS`` characters of one completion go to ``json_repair``, whose time grows
  with the square of the length on some inputs (8 KB of unbalanced quotes under a few brackets took
  4 s); a block that would need a repair beyond that budget is malformed.

Not guaranteed: a closing tag written inside an argument string (code that prints
``</tool_call>``) ends the block there, so such a call is never accepted as written: the rest of
it is a stray closing tag, and the turn is malformed (counted), never silently changed.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import json_repair

_BLOCK = re.compile(r"<tool_call>(.*?)(?:</tool_call>|\Z)", re.DOTALL)
MAX_DEPTH = 64
"""Deepest ``{``/``[`` nesting (outside strings) a tool-call block may have; deeper is malformed."""
MAX_REPAIR_CHARS = 4096
"""Characters of one completion's invalid JSON that may be handed to ``json_repair`` in all."""
STRAY_CLOSING_TAG = "a </tool_call> closing tag has no opening <tool_call>"


@dataclass
class ParsedCompletion:
    text: str
    tool_calls: list[dict] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    """Why each malformed block (or a stray closing tag) could not become a call, one short clause
    each, in the order written."""
    repaired: bool = False
    """A call was accepted only after a repair: near-JSON fixed by ``json_repair``, arguments given
    as a JSON string or as ``parameters``, or a block without its closing tag."""

    @property
    def malformed(self) -> bool:
        return bool(self.problems)


def parse_tool_calls(completion: str) -> ParsedCompletion:
    """Split ``completion`` into text and well-formed tool calls (``{"name", "arguments"}``)."""
    if "<tool_call>" not in completion:
        stray = [STRAY_CLOSING_TAG] if "</tool_call>" in completion else []
        return ParsedCompletion(completion.strip(), problems=stray)
    calls: list[dict] = []
    kept: list[str] = []
    problems: list[str] = []
    repaired = False
    budget = _RepairBudget(MAX_REPAIR_CHARS)
    pos = 0
    for m in _BLOCK.finditer(completion):
        kept.append(completion[pos:m.start()])
        call, fixed, problem = _parse_one(m.group(1), budget)
        if call is None:
            problems.append(problem)
            kept.append(m.group(0))
        else:
            calls.append(call)
            repaired = repaired or fixed or not m.group(0).endswith("</tool_call>")
        pos = m.end()
    kept.append(completion[pos:])
    text = "".join(kept)
    if "</tool_call>" in text and "<tool_call>" not in text:
        problems.append(STRAY_CLOSING_TAG)
    return ParsedCompletion(text.strip(), calls, problems, repaired)


def nesting_depth(text: str) -> int:
    """The deepest ``{``/``[`` nesting of ``text``, not counting brackets inside JSON strings."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "{[":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "}]":
            depth = max(0, depth - 1)
    return deepest


class _RepairBudget:
    """What is left of one completion's ``MAX_REPAIR_CHARS``."""

    def __init__(self, chars: int) -> None:
        self.left = chars

    def load(self, text: str) -> tuple[Any, bool] | None:
        """(the JSON value of ``text``, whether it needed a repair), or None when ``text`` is not
        JSON and cannot be repaired within the budget."""
        try:
            return json.loads(text), False
        except (ValueError, RecursionError):  # ValueError covers JSONDecodeError and the int-digit limit
            pass
        if len(text) > self.left:
            return None
        self.left -= len(text)
        try:
            return json_repair.loads(text), True
        except Exception:  # json_repair raises assorted errors on garbage; garbage is malformed
            return None


def _parse_one(body: str, budget: _RepairBudget) -> tuple[dict | None, bool, str]:
    """(the call or None if malformed, whether accepting it needed a repair, why it is malformed)."""
    body = body.strip()
    if not body:
        return None, False, "the <tool_call> block is empty"
    if nesting_depth(body) > MAX_DEPTH:
        return None, False, f"the <tool_call> block is nested deeper than {MAX_DEPTH} brackets"
    loaded = budget.load(body)
    if loaded is None:
        return None, False, "the <tool_call> block is not valid JSON"
    obj, repaired = loaded
    if not isinstance(obj, dict):
        return None, False, "the <tool_call> block is not a JSON object"
    name = obj.get("name")
    if "arguments" not in obj and "parameters" in obj:
        repaired = True
    args = obj.get("arguments", obj.get("parameters", {}))
    if isinstance(args, str):
        if nesting_depth(args) > MAX_DEPTH:
            return None, False, f'its "arguments" are nested deeper than {MAX_DEPTH} brackets'
        loaded = budget.load(args) if args.strip() else ({}, True)
        if loaded is None:
            return None, False, 'its "arguments" string is not valid JSON'
        args = loaded[0]
        repaired = True
    if not isinstance(name, str) or not name:
        return None, False, 'it has no "name" string'
    if not isinstance(args, dict):
        return None, False, 'its "arguments" is not a JSON object'
    return {"name": name, "arguments": args}, repaired, ""
