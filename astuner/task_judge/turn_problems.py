"""Malformed turns beyond the seed's three bad cases, each counted per rollout (never hidden).

Why: a policy trained on turns the agent loop quietly repaired or ignored learns that they are
fine. These flags make every such turn a ``bad_case/<name>`` metric; like the seed's three they
change the reward only through ``task_judge.bad_case_penalties`` (none by default).

* ``repaired_tool_call``: a tool call was accepted only after a repair (near-JSON fixed by
  ``json_repair``, arguments given as a JSON string or as ``parameters``, a block without its
  closing ``</tool_call>``); the call still ran.
* ``empty_reply``: a completion with no text and no tool call (empty or whitespace only).
* ``special_token_in_reply``: the completion's text holds a chat-template control token written as
  text (``<|im_end|>``, ``<|im_start|>``, ``<|endoftext|>``, any ``<|name|>``).
* ``spoofed_tool_response``: the assistant wrote a ``<tool_response>`` tag itself, as if it were
  the tool.
* ``invalid_tool_call``: a parsed call names a tool the call did not offer, or its arguments lack a
  ``required`` property, add one the schema does not declare (when the schema lists properties
  and does not allow others), or give a property a value of another JSON type than declared.

Not guaranteed: tools are checked against the schemas offered in that call only (a call made
without tools is not checked); JSON types are checked one level deep (``string``, ``integer``,
``number``, ``boolean``, ``object``, ``array``, ``null``), not formats, enums or nested schemas.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from astuner.schema import CallRecord

TURN_PROBLEMS = ("repaired_tool_call", "empty_reply", "special_token_in_reply", "spoofed_tool_response",
                 "invalid_tool_call")

_CONTROL_TOKEN = re.compile(r"<\|[A-Za-z0-9_]+\|>")
_TOOL_RESPONSE_TAG = re.compile(r"</?tool_response>")
_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,), "integer": (int,), "number": (int, float), "boolean": (bool,),
    "object": (dict,), "array": (list,), "null": (type(None),),
}


def detect_turn_problems(calls: list[CallRecord]) -> dict[str, bool]:
    """One flag per name in ``TURN_PROBLEMS`` for a rollout's calls."""
    return {
        "repaired_tool_call": any(c.repaired_tool_call for c in calls),
        "empty_reply": any(not (c.response_text or "").strip() for c in calls),
        "special_token_in_reply": any(_CONTROL_TOKEN.search(c.response_text or "") for c in calls),
        "spoofed_tool_response": any(_TOOL_RESPONSE_TAG.search(c.response_text or "") for c in calls),
        "invalid_tool_call": any(invalid_call(c) for c in calls),
    }


def invalid_call(call: CallRecord) -> bool:
    """Whether a parsed call of ``call`` does not fit the tools that call offered."""
    if not call.tools:
        return False
    schemas = {name: params for name, params in map(_schema, call.tools) if name}
    for parsed in call.parsed_tool_calls:
        name = parsed.get("name") if isinstance(parsed, Mapping) else None
        if name not in schemas or not arguments_fit(parsed.get("arguments"), schemas[name]):
            return True
    return False


def arguments_fit(args: Any, params: Mapping) -> bool:
    """Whether ``args`` fits a JSON-schema ``parameters`` object (required, declared, one level of types)."""
    if not isinstance(args, Mapping):
        return False
    props = params.get("properties") if isinstance(params.get("properties"), Mapping) else {}
    required = params.get("required") if isinstance(params.get("required"), list) else []
    if any(name not in args for name in required):
        return False
    if props and params.get("additionalProperties") is not True and any(name not in props for name in args):
        return False
    for name, value in args.items():
        spec = props.get(name)
        if isinstance(spec, Mapping) and not _has_type(value, spec.get("type")):
            return False
    return True


def _has_type(value: Any, declared: Any) -> bool:
    kinds = declared if isinstance(declared, list) else [declared]
    if not kinds or kinds == [None] or any(k not in _JSON_TYPES for k in kinds if k is not None):
        return True  # no type, or one this check does not know: not judged
    for kind in kinds:
        if kind in ("integer", "number") and isinstance(value, bool):
            continue  # JSON true/false is not a number
        if isinstance(value, _JSON_TYPES[kind]):
            return True
    return False


def _schema(tool: Any) -> tuple[str | None, Mapping]:
    """(name, parameters) of an OpenAI-style tool schema (``{"type": "function", "function": {...}}`` or flat)."""
    if not isinstance(tool, Mapping):
        return None, {}
    function = tool.get("function") if isinstance(tool.get("function"), Mapping) else tool
    params = function.get("parameters") if isinstance(function.get("parameters"), Mapping) else {}
    name = function.get("name")
    return (name if isinstance(name, str) else None), params
