"""The seed's three tool-discipline bad cases, detected from a rollout's call records.

Why: the Math Agent results section names the failures tuning should remove (a malformed
``<tool_call>``, Python that printed nothing, a final answer emitted in the same turn as a tool
call). Flagging them per rollout makes them metrics and, through ``apply_penalties``, optional
reward penalties; correctness stays the primary signal.

Definitions (each flag is True when the rollout shows the behaviour at least once):

* ``malformed_tool_call``: a call whose completion the tool-call parser flagged as malformed.
* ``empty_tool_stdout``: an ``execute_python_code`` result (in any call's messages or the final
  messages) whose ``<stdout>`` is empty or whitespace, whatever the return code (a crash that
  printed nothing counts too).
* ``answer_before_tool_response``: one completion that both calls a non-finish tool and gives a
  final answer (calls ``generate_response`` or writes ``\\boxed{`` outside its tool calls), so the
  answer cannot have used that tool's result.

Not guaranteed: tool results are recognised by name (from the message or the assistant call it
answers) or, when unnamed, by AgentScope's ``<returncode>`` format; a differently formatted python
tool is not seen. Whether an answer *used* a tool's output is not judged.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from astuner.schema import CallRecord

BAD_CASES = ("malformed_tool_call", "empty_tool_stdout", "answer_before_tool_response")

PYTHON_TOOL_NAME = "execute_python_code"
FINISH_TOOL_NAMES = frozenset({"generate_response"})

_RESULT_FORMAT = re.compile(r"<returncode>.*?</returncode>\s*<stdout>(.*?)</stdout>", re.S)
_TOOL_CALL_SPAN = re.compile(r"<tool_call>.*?(?:</tool_call>|\Z)", re.S)
_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")


def message_text(content: Any) -> str:
    """The text of a chat message's ``content``: a string, or a list of text blocks/strings."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, Iterable) and not isinstance(content, (bytes, Mapping)):
        parts = []
        for block in content:
            if isinstance(block, str):
                parts.append(block)
            elif isinstance(block, Mapping) and isinstance(block.get("text"), str):
                parts.append(block["text"])
        return "".join(parts)
    return str(content)


def _tool_call_names(message: Mapping) -> dict[str, str]:
    """tool_call_id -> tool name for an assistant message's ``tool_calls`` (OpenAI or flat form)."""
    names = {}
    for call in message.get("tool_calls") or []:
        if not isinstance(call, Mapping):
            continue
        function = call.get("function") if isinstance(call.get("function"), Mapping) else call
        if call.get("id") is not None and function.get("name"):
            names[str(call["id"])] = str(function["name"])
    return names


def _python_stdouts(messages: list[dict]) -> Iterable[str]:
    """The stdout of every python-tool result among ``messages``."""
    names: dict[str, str] = {}
    for message in messages:
        if not isinstance(message, Mapping):
            continue
        if message.get("role") == "assistant":
            names.update(_tool_call_names(message))
            continue
        if message.get("role") != "tool":
            continue
        name = message.get("name") or names.get(str(message.get("tool_call_id")))
        if name is not None and name != PYTHON_TOOL_NAME:
            continue
        match = _RESULT_FORMAT.search(message_text(message.get("content")))
        if match:
            yield match.group(1)


def has_empty_tool_stdout(messages: list[dict]) -> bool:
    """Whether any python-tool result in ``messages`` printed nothing."""
    return any(not stdout.strip() for stdout in _python_stdouts(messages))


def answers_before_tool_response(call: CallRecord) -> bool:
    """Whether one completion calls a non-finish tool and also gives the final answer."""
    names = [str(c.get("name", "")) for c in call.parsed_tool_calls if isinstance(c, Mapping)]
    if not any(name not in FINISH_TOOL_NAMES for name in names):
        return False
    if any(name in FINISH_TOOL_NAMES for name in names):
        return True
    return bool(_BOXED.search(_TOOL_CALL_SPAN.sub("", call.response_text or "")))


def detect_bad_cases(calls: list[CallRecord], final_messages: list[dict] | None = None) -> dict[str, bool]:
    """One flag per name in ``BAD_CASES`` for a rollout's calls (and its final conversation)."""
    messages = [m for call in calls for m in call.messages] + list(final_messages or [])
    return {
        "malformed_tool_call": any(call.malformed_tool_call for call in calls),
        "empty_tool_stdout": has_empty_tool_stdout(messages),
        "answer_before_tool_response": any(answers_before_tool_response(call) for call in calls),
    }


def apply_penalties(raw_reward: float, flags: Mapping[str, bool], penalties: Mapping[str, float]) -> float:
    """``raw_reward`` minus the penalty of every flag that is set (flags without a penalty, and
    penalties for flags not reported, change nothing)."""
    reward = float(raw_reward)
    for name, flagged in flags.items():
        if flagged and name in penalties:
            reward -= float(penalties[name])
    return reward
