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
    tuner, _ = make(qwen25_tokenizer, ["Sure. " + CALL])
    res = asyncio.run(tuner([{"role": "user", "content": "hi"}], tools=TOOLS, tool_choice="none"))
    assert [b["type"] for b in res.content] == ["text"]
    assert tuner.calls[0].parsed_tool_calls == []


def test_tool_calls_become_tool_use_blocks_and_are_recorded(qwen25_tokenizer):
    tuner, engine = make(qwen25_tokenizer, ["Sure. " + CALL])
    res = asyncio.run(tuner([{"role": "user", "content": "hi"}], tools=TOOLS, tool_choice="auto"))
    kinds = [b["type"] for b in res.content]
    assert kinds == ["text", "tool_use"]
    assert res.content[1]["name"] == "execute_python_code" and res.content[1]["input"] == {"code": "print(1)"}
    rec = tuner.calls[0]
    assert rec.completion_ids == engine.returned[0].token_ids and rec.logprobs == engine.returned[0].logprobs
    assert rec.finish_reason == "stop" and rec.reply_text == "Sure."
    assert res.usage.output_tokens == len(rec.completion_ids)


def test_structured_model_sets_metadata(qwen25_tokenizer):
    class Summary(BaseModel):
        text: str

    reply = '<tool_call>\n' + json.dumps({"name": STRUCTURED_TOOL, "arguments": {"text": "short"}}) + "\n</tool_call>"
    tuner, engine = make(qwen25_tokenizer, [reply])
    res = asyncio.run(tuner([{"role": "user", "content": "summarise"}], structured_model=Summary))
    assert res.metadata == {"text": "short"}
    assert STRUCTURED_TOOL in qwen25_tokenizer.decode(engine.prompts[0])


def test_changed_history_starts_a_new_timeline(qwen25_tokenizer):
    tuner, _ = make(qwen25_tokenizer, ["one", "two"])
    asyncio.run(tuner([{"role": "user", "content": "hi"}]))
    asyncio.run(tuner([{"role": "user", "content": "a different question"}]))
    assert tuner.timeline_breaks == 1 and [c.timeline for c in tuner.calls] == [0, 1]


def test_judge_dictionary_updates_not_replaces(qwen25_tokenizer):
    tuner, _ = make(qwen25_tokenizer, ["x"])
    tuner.update_judge_input_dictionary(final_answer="1", extra=2)
    tuner.update_judge_input_dictionary(final_answer="3")
    assert tuner.get_judge_input_dictionary() == {"final_answer": "3", "extra": 2}


def test_unparsable_call_is_answered_with_a_readable_tool_message(qwen25_tokenizer):
    """The agent gets a placeholder call; the next prompt shows the model its own tokens, then a tool
    response saying why nothing ran, and still extends the previous call's ids (no new timeline)."""
    from astuner.tool_call_answers import UNPARSED_CALL_TOOL, answer_unparsed_calls

    broken = 'Let me run it. <tool_call>{"arguments": {"code": "print(1)"}}</tool_call> and <tool_call></tool_call>'
    tuner, engine = make(qwen25_tokenizer, [broken, "done"])
    user = {"role": "user", "content": "hi"}
    res = asyncio.run(tuner([user], tools=TOOLS, tool_choice="auto"))
    placeholders = [b for b in res.content if b["type"] == "tool_use"]
    assert [b["name"] for b in placeholders] == [UNPARSED_CALL_TOOL, UNPARSED_CALL_TOOL]
    rec = tuner.calls[0]
    assert rec.malformed_tool_call and rec.parsed_tool_calls == []
    assert rec.tool_call_problems == ['it has no "name" string', "the <tool_call> block is empty"]
    history = [user, {"role": "assistant", "content": res.content[0]["text"], "tool_calls": [
        {"id": b["id"], "type": "function", "function": {"name": b["name"], "arguments": json.dumps(b["input"])}}
        for b in placeholders]}]
    history += [{"role": "tool", "tool_call_id": b["id"], "name": b["name"],
                 "content": f"FunctionNotFoundError: Cannot find the function named {b['name']}"} for b in placeholders]
    asyncio.run(tuner(history, tools=TOOLS, tool_choice="auto"))
    second = qwen25_tokenizer.decode(engine.prompts[1])
    assert "FunctionNotFoundError" not in second and UNPARSED_CALL_TOOL not in second
    assert "Error: this tool call was not run because it has no \"name\" string." in second
    assert "Error: this tool call was not run because the <tool_call> block is empty." in second
    assert "Available tools: execute_python_code." in second
    assert engine.prompts[1][: len(engine.prompts[0]) + len(rec.completion_ids)] == engine.prompts[0] + rec.completion_ids
    assert tuner.timeline_breaks == 0
    assert answer_unparsed_calls(history, {}) is history


def test_structured_request_gets_no_placeholder_calls(qwen25_tokenizer):
    class Summary(BaseModel):
        text: str

    tuner, _ = make(qwen25_tokenizer, ["<tool_call>{oops</tool_call>"])
    res = asyncio.run(tuner([{"role": "user", "content": "summarise"}], structured_model=Summary))
    assert [b["type"] for b in res.content] == ["text"] and tuner.calls[0].malformed_tool_call
