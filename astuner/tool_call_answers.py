"""Answers to tool calls that could not be parsed: a tool message the model can read.

Why: left in the reply as plain text, a ``<tool_call>`` block that does not parse would make the
agent take the turn for a final answer (or, with structured output required, give it only a generic
hint), and the model would never learn what was wrong. So ``ModelTuner`` gives the agent one
placeholder tool-use block per problem, named ``UNPARSED_CALL_TOOL``. The agent's toolkit has no
such tool, so it answers with its own "function not found" result; on the next model call
``answer_unparsed_calls`` puts the message below in place of that result and removes the placeholder
call from the assistant message, so the model sees exactly what it wrote followed by a tool response
that says why nothing ran. The prompt still extends the previous call's tokens (``ModelTuner``
compares the assistant message without placeholders).

Not guaranteed: an agent that stops before calling the model again (its last iteration) never
shows the message to the model; agents whose memory drops tool results do not either. The turn is
counted as ``malformed_tool_call`` either way.
"""

from __future__ import annotations

from typing import Any

UNPARSED_CALL_TOOL = "astuner_unparsed_tool_call"
"""The name of the placeholder tool-use block; no toolkit registers it."""


def unparsed_call_message(problem: str, tools: list[dict] | None) -> str:
    """The tool response the model reads for one block that could not become a call."""
    names = [t.get("function", t).get("name") for t in tools or []]
    offered = ", ".join(n for n in names if isinstance(n, str))
    text = (
        f"Error: this tool call was not run because {problem}. Write each call as "
        '<tool_call>{"name": <tool name>, "arguments": {<argument>: <value>}}</tool_call> with valid JSON.'
    )
    return f"{text} Available tools: {offered}." if offered else text


def answer_unparsed_calls(messages: list[dict[str, Any]], answers: dict[str, str]) -> list[dict[str, Any]]:
    """Formatter messages with each placeholder call (an id in ``answers``) removed from its
    assistant message and its tool result's content replaced by ``answers[id]`` (without the
    placeholder's name)."""
    if not answers:
        return messages
    out = []
    for m in messages:
        if m.get("role") == "assistant" and m.get("tool_calls"):
            kept = [tc for tc in m["tool_calls"] if tc.get("id") not in answers]
            m = {k: v for k, v in m.items() if k != "tool_calls"}
            if kept:
                m["tool_calls"] = kept
        elif m.get("role") == "tool" and m.get("tool_call_id") in answers:
            m = {**{k: v for k, v in m.items() if k != "name"}, "content": answers[m["tool_call_id"]]}
        out.append(m)
    return out
