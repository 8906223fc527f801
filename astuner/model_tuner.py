"""The model a workflow talks to: an AgentScope ``ChatModelBase`` that records every token.

``ModelTuner`` is the *model tuner* (docs/architecture.md, "Vocabulary"): seed-style workflows
receive it as ``astune_proxy``, new-style ones as ``model_tuner``, agentscope.tuner functions as
``model``. One instance serves one rollout. Each call

1. normalises the formatter's messages (DashScope or OpenAI style) to plain chat messages;
2. builds the prompt ids. When the conversation only grew since the previous call (same tools,
   same earlier messages, the previous reply stored as we returned it), the prompt is the previous
   prompt ids + the previous completion ids + the template's tail + the new messages' text encoded
   — so the model's own tokens are never re-tokenized and the whole ReAct rollout is one sample.
   Otherwise the conversation is rendered afresh and a new *timeline* starts (counted);
3. refuses over-long prompts without calling the engine (the agent sees upstream's overflow text);
4. calls the engine with token ids and parses Hermes ``<tool_call>`` blocks into tool-use blocks;
   a block that does not parse becomes a placeholder call whose tool response, on the next call,
   says why nothing ran (``astuner/tool_call_answers.py``);
5. records a ``CallRecord`` (prompt ids, completion ids, logprobs, finish reason).

``tool_choice`` is honoured when parsing, not by constrained decoding: ``"none"`` returns the
reply as text only; a named function keeps only calls to it. ``structured_model`` (used by
AgentScope's memory compression and query rewriting, not by ReActAgent's main loop) adds a
``generate_structured_output`` tool and returns its arguments as ``ChatResponse.metadata``.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from agentscope.message import TextBlock, ToolUseBlock
from agentscope.model import ChatModelBase, ChatResponse
from agentscope.model._model_usage import ChatUsage

from astuner.chat_template import ChatTemplate
from astuner.engine.base import Engine, SamplingParams
from astuner.schema import CallRecord
from astuner.tool_call_answers import UNPARSED_CALL_TOOL, answer_unparsed_calls, unparsed_call_message
from astuner.tool_call_parser import parse_tool_calls

CONTEXT_OVERFLOW_TEXT = "astune_proxy: Exceeded max model context length."
STRUCTURED_TOOL = "generate_structured_output"


@dataclass
class ModelTunerSettings:
    """Per-call limits and sampling, taken from ``astuner.rollout``."""

    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = -1
    max_model_len: int = 18000
    max_response_length_in_one_turn: int = 4096
    seed: int | None = None


@dataclass
class _Previous:
    messages: list[dict]
    tools_key: str
    prompt_ids: list[int]
    prompt_text: str
    completion_ids: list[int]
    assistant: dict


class ModelTuner(ChatModelBase):
    """The AgentScope chat model of one rollout: token-exact prompts and call records."""

    def __init__(
        self,
        engine: Engine,
        template: ChatTemplate,
        settings: ModelTunerSettings | None = None,
        *,
        context: dict | None = None,
        model_name: str = "astuner",
    ) -> None:
        super().__init__(model_name=model_name, stream=False)
        self.engine = engine
        self.template = template
        self.settings = settings or ModelTunerSettings()
        self.context = dict(context or {})
        self.calls: list[CallRecord] = []
        self.timeline = 0
        self.timeline_breaks = 0
        self.context_overflow = False
        self.judge_input_dictionary: dict[str, Any] = {}
        self.agentscope_input_dictionary: dict[str, Any] = {}
        self._prev: _Previous | None = None
        self._unparsed_answers: dict[str, str] = {}

    def update_judge_input_dictionary(self, **kwargs: Any) -> None:
        """Add keys (e.g. ``final_answer``) that the judge will read; later calls update, not replace."""
        self.judge_input_dictionary.update(kwargs)

    def get_judge_input_dictionary(self) -> dict[str, Any]:
        return self.judge_input_dictionary

    def update_agentscope_input_dictionary(self, **kwargs: Any) -> None:
        self.agentscope_input_dictionary.update(kwargs)

    def get_agentscope_input_dictionary(self) -> dict[str, Any]:
        return self.agentscope_input_dictionary

    @property
    def grouped_steps(self) -> list[list[dict]]:
        """One conversation snapshot per call: the messages sent plus the reply."""
        return [c.messages + [_assistant_message(c)] for c in self.calls]

    async def __call__(
        self,
        messages: list[dict],
        tools: list[dict] | None = None,
        tool_choice: str | None = None,
        structured_model: Any = None,
        **kwargs: Any,
    ) -> ChatResponse:
        started = time.monotonic()
        msgs = normalize_messages(answer_unparsed_calls(messages, self._unparsed_answers))
        tools = [dict(t) for t in tools] if tools else None
        if structured_model is not None:
            tools = (tools or []) + [_structured_tool(structured_model)]
            tool_choice = STRUCTURED_TOOL
        prompt_ids, prompt_text = self._build_prompt(msgs, tools)
        s = self.settings
        budget = s.max_model_len - len(prompt_ids)
        if len(prompt_ids) >= s.max_model_len - s.max_response_length_in_one_turn or budget <= 0:
            self.context_overflow = True
            return ChatResponse(content=[TextBlock(type="text", text=CONTEXT_OVERFLOW_TEXT)])
        params = SamplingParams(
            max_tokens=min(s.max_response_length_in_one_turn, budget),
            temperature=s.temperature,
            top_p=s.top_p,
            top_k=s.top_k,
            stop_token_ids=list(self.template.stop_token_ids),
            seed=None if s.seed is None else s.seed + len(self.calls),
        )
        ctx = {**self.context, "call_index": len(self.calls), "messages": msgs}
        completion = await self.engine.generate(prompt_ids, params, context=ctx)
        ids = list(completion.token_ids)
        body = ids[:-1] if ids and ids[-1] in self.template.stop_token_ids else ids
        text = self.template.decode(body)
        repaired = False
        problems: list[str] = []
        if tool_choice == "none":
            parsed_text, calls = text.strip(), []
        else:
            parsed = parse_tool_calls(text)
            parsed_text, calls, problems, repaired = parsed.text, parsed.tool_calls, parsed.problems, parsed.repaired
            if tool_choice not in (None, "auto", "required"):
                calls = [c for c in calls if c["name"] == tool_choice]
        record = CallRecord(
            prompt_ids=prompt_ids,
            completion_ids=ids,
            logprobs=list(completion.logprobs),
            finish_reason=completion.finish_reason,
            timeline=self.timeline,
            response_text=text,
            reply_text=parsed_text,
            messages=msgs,
            tools=tools,
            parsed_tool_calls=calls,
            malformed_tool_call=bool(problems),
            repaired_tool_call=repaired,
            tool_call_problems=problems,
        )
        self.calls.append(record)
        self._prev = _Previous(
            messages=msgs,
            tools_key=_tools_key(tools),
            prompt_ids=prompt_ids,
            prompt_text=prompt_text,
            completion_ids=ids,
            assistant=_assistant_message(record),
        )
        return self._response(record, parsed_text, started, answer_problems=structured_model is None)

    def _build_prompt(self, msgs: list[dict], tools: list[dict] | None) -> tuple[list[int], str]:
        prompt_text = self.template.render(msgs, tools, add_generation_prompt=True)
        extended = self._extend_previous(msgs, tools, prompt_text)
        if extended is not None:
            return extended, prompt_text
        if self._prev is not None:
            self.timeline += 1
            self.timeline_breaks += 1
        return self.template.encode(prompt_text), prompt_text

    def _extend_previous(self, msgs: list[dict], tools: list[dict] | None, prompt_text: str) -> list[int] | None:
        """Prompt ids that reuse the previous call's tokens, or None if the conversation changed."""
        prev = self._prev
        if prev is None or _tools_key(tools) != prev.tools_key:
            return None
        k = len(prev.messages)
        if len(msgs) <= k or msgs[:k] != prev.messages or not _same_assistant(msgs[k], prev.assistant):
            return None
        turn = self.template.turn
        with_reply = self.template.render(msgs[: k + 1], tools, add_generation_prompt=False)
        if not with_reply.startswith(prev.prompt_text) or not prompt_text.startswith(with_reply):
            return None
        closing = turn.end_of_turn_text + turn.tail_text
        if not with_reply.endswith(closing):
            return None
        ids = prev.prompt_ids + prev.completion_ids
        if not prev.completion_ids or prev.completion_ids[-1] != turn.end_of_turn_id:
            ids = ids + [turn.end_of_turn_id]
        return ids + self.template.encode(turn.tail_text + prompt_text[len(with_reply):])

    def _response(self, record: CallRecord, text: str, started: float, *, answer_problems: bool) -> ChatResponse:
        """The agent's view of ``record``: its text, its calls, and (``answer_problems``: not for a
        structured-output request) one placeholder call per block that did not parse."""
        blocks: list[Any] = []
        if text:
            blocks.append(TextBlock(type="text", text=text))
        metadata = None
        for call in record.parsed_tool_calls:
            blocks.append(
                ToolUseBlock(type="tool_use", id=f"call_{uuid.uuid4().hex[:16]}", name=call["name"], input=call["arguments"])
            )
            if call["name"] == STRUCTURED_TOOL:
                metadata = call["arguments"]
        for problem in record.tool_call_problems if answer_problems else []:
            call_id = f"call_{uuid.uuid4().hex[:16]}"
            self._unparsed_answers[call_id] = unparsed_call_message(problem, record.tools)
            blocks.append(ToolUseBlock(type="tool_use", id=call_id, name=UNPARSED_CALL_TOOL, input={"problem": problem}))
        if not blocks:
            blocks.append(TextBlock(type="text", text=""))
        usage = ChatUsage(
            input_tokens=len(record.prompt_ids),
            output_tokens=len(record.completion_ids),
            time=time.monotonic() - started,
        )
        return ChatResponse(content=blocks, usage=usage, metadata=metadata)


def normalize_messages(messages: list[dict]) -> list[dict]:
    """Formatter output → plain chat messages: string content, tool-call arguments as dicts."""
    out = []
    for m in messages:
        msg: dict[str, Any] = {"role": m["role"], "content": _text_of(m.get("content"))}
        if m.get("tool_calls"):
            msg["tool_calls"] = [_norm_tool_call(tc) for tc in m["tool_calls"]]
        if m["role"] == "tool" and m.get("name"):
            msg["name"] = m["name"]
        out.append(msg)
    return out


def _text_of(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    parts = []
    for item in content:
        if isinstance(item, str):
            parts.append(item)
        elif isinstance(item, dict) and isinstance(item.get("text"), str):
            parts.append(item["text"])
    return "\n".join(parts)


def _norm_tool_call(tc: dict) -> dict:
    fn = tc.get("function", tc)
    args = fn.get("arguments", {})
    if isinstance(args, str):
        try:
            args = json.loads(args) if args.strip() else {}
        except json.JSONDecodeError:
            args = {"__raw__": args}
    return {"type": "function", "function": {"name": fn.get("name", ""), "arguments": args}}


def _assistant_message(record: CallRecord) -> dict:
    msg: dict[str, Any] = {"role": "assistant", "content": record.reply_text}
    if record.parsed_tool_calls:
        msg["tool_calls"] = [
            {"type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}}
            for c in record.parsed_tool_calls
        ]
    return msg


def _same_assistant(got: dict, expected: dict) -> bool:
    if got.get("role") != "assistant":
        return False
    if got.get("content", "").strip() != expected.get("content", "").strip():
        return False
    return got.get("tool_calls", []) == expected.get("tool_calls", [])


def _tools_key(tools: list[dict] | None) -> str:
    return json.dumps(tools or [], sort_keys=True)


def _structured_tool(model: Any) -> dict:
    return {
        "type": "function",
        "function": {
            "name": STRUCTURED_TOOL,
            "description": "Give the required structured output.",
            "parameters": model.model_json_schema(),
        },
    }
