"""ModelTuner details: message normalisation, tool_choice, structured output, call records."""

from __future__ import annotations

import asyncio
import json

from pydantic import BaseModel

from astuner.chat_template import ChatTemplate
from astuner.model_tuner import STRUCTURED_TOOL, ModelTuner, normalize_messages
from tests.replay import ReplayEngine

CALL = '<tool_call>\n{"name": "execute_python_code", "arguments": {"code": "print(1)"}}\n</tool_call>'
TOOLS = [{"type": "function", "function": {"name": "execute_python_code", "description": "run",
                                           "parameters": {"type": "object", "properties": {"code": {"type": "string"}}}}}]


def make(tokenizer, replies):
    template = ChatTemplate(tokenizer)
    engine = ReplayEngine(tokenizer, replies, template.turn.end_of_turn_id)
    return ModelTuner(engine, template), engine


def test_normalize_dashscope_list_content_and_string_arguments():
    msgs = normalize_messages([
        {"role": "user", "content": [{"text": "a"}, {"type": "text", "text": "b"}, {"image": "x.png"}]},
        {"role": "assistant", "content": None,
         "tool_calls": [{"id": "1", "type": "function", "function": {"name": "f", "arguments": "{\"k\": 1}"}}]},
        {"role": "tool", "tool_call_id": "1", "name": "f", "content": "out"},
    ])
    assert msgs[0] == {"role": "user", "content": "a\nb"}
    assert msgs[1]["content"] == "" and msgs[1]["tool_calls"][0]["function"] == {"name": "f", "arguments": {"k": 1}}
    assert msgs[2] == {"role": "tool", "content": "out", "name": "f"}


def test_tool_choice_none_returns_text_only(qwen25_tokenizer):
    proxy, _ = make(qwen25_tokenizer, ["Sure. " + CALL])
    res = asyncio.run(proxy([{"role": "user", "content": "hi"}], tools=TOOLS, tool_choice="none"))
    assert [b["type"] for b in res.content] == ["text"]
    assert proxy.calls[0].parsed_tool_calls == []


def test_tool_calls_become_tool_use_blocks_and_are_recorded(qwen25_tokenizer):
    proxy, engine = make(qwen25_tokenizer, ["Sure. " + CALL])
    res = asyncio.run(proxy([{"role": "user", "content": "hi"}], tools=TOOLS, tool_choice="auto"))
    kinds = [b["type"] for b in res.content]
    assert kinds == ["text", "tool_use"]
    assert res.content[1]["name"] == "execute_python_code" and res.content[1]["input"] == {"code": "print(1)"}
    rec = proxy.calls[0]
    assert rec.completion_ids == engine.returned[0].token_ids and rec.logprobs == engine.returned[0].logprobs
    assert rec.finish_reason == "stop" and rec.reply_text == "Sure."
    assert res.usage.output_tokens == len(rec.completion_ids)


def test_structured_model_sets_metadata(qwen25_tokenizer):
    class Summary(BaseModel):
        text: str

    reply = '<tool_call>\n' + json.dumps({"name": STRUCTURED_TOOL, "arguments": {"text": "short"}}) + "\n</tool_call>"
    proxy, engine = make(qwen25_tokenizer, [reply])
    res = asyncio.run(proxy([{"role": "user", "content": "summarise"}], structured_model=Summary))
    assert res.metadata == {"text": "short"}
    assert STRUCTURED_TOOL in qwen25_tokenizer.decode(engine.prompts[0])


def test_changed_history_starts_a_new_timeline(qwen25_tokenizer):
    proxy, _ = make(qwen25_tokenizer, ["one", "two"])
    asyncio.run(proxy([{"role": "user", "content": "hi"}]))
    asyncio.run(proxy([{"role": "user", "content": "a different question"}]))
    assert proxy.timeline_breaks == 1 and [c.timeline for c in proxy.calls] == [0, 1]


def test_judge_dictionary_updates_not_replaces(qwen25_tokenizer):
    proxy, _ = make(qwen25_tokenizer, ["x"])
    proxy.update_judge_input_dictionary(final_answer="1", extra=2)
    proxy.update_judge_input_dictionary(final_answer="3")
    assert proxy.get_judge_input_dictionary() == {"final_answer": "3", "extra": 2}
