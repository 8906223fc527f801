"""A tool call that cannot be parsed is answered with a tool message the model reads, in real rollouts.

The Math Agent runs through the scripted engine on the debug backbone. Each task's first reply is
one family of unparsable call; the second reply finishes well. The rollout must count
``malformed_tool_call``, carry on to the second model call (the agent is not ended by the broken
turn), and the second call's conversation must hold the model's own broken text followed by a tool
message that names the problem; no placeholder name or toolkit error may reach the model.
"""

from __future__ import annotations

import json

import pytest

from astuner.tool_call_answers import UNPARSED_CALL_TOOL
from tests.first_reply_runs import run_first_replies

pytestmark = pytest.mark.integration

FINISH = ('The answer is \\boxed{4}.\n<tool_call>\n'
          '{"name": "generate_response", "arguments": {"result": "\\\\boxed{4}"}}\n</tool_call>')
FAMILIES = {
    "empty_block": ("<tool_call></tool_call>", "the <tool_call> block is empty"),
    "not_an_object": ("<tool_call>execute_python_code(print(2 + 2))</tool_call>", "the <tool_call> block is not a JSON object"),
    "no_name": ('<tool_call>{"arguments": {"code": "print(4)"}}</tool_call>', 'it has no "name" string'),
    "arguments_list": ('<tool_call>{"name": "execute_python_code", "arguments": ["print(4)"]}</tool_call>',
                       'its "arguments" is not a JSON object'),
    "too_deep": ('<tool_call>{"name": "execute_python_code", "arguments": {"code": ' + "[" * 80 + "]" * 80 + "}}</tool_call>",
                 "the <tool_call> block is nested deeper than 64 brackets"),
    "stray_closing_tag": ("I will compute it.</tool_call>", "a </tool_call> closing tag has no opening <tool_call>"),
    "beyond_repair": ("<tool_call>" + '{"name": "execute_python_code", "arguments": {"code": "' + '"x' * 2500 + "</tool_call>",
                      "the <tool_call> block is not valid JSON"),
}


def test_each_unparsable_call_is_answered_and_counted(tmp_path, capsys):
    firsts = {family: first for family, (first, _) in FAMILIES.items()}
    code, rollouts_file = run_first_replies(tmp_path, "unparsed", firsts, FINISH)
    out = capsys.readouterr().out
    assert code == 0, out
    rows = {json.loads(line)["task_id"]: json.loads(line)
            for line in rollouts_file.read_text().splitlines()}
    assert set(rows) == set(FAMILIES)
    for family, (first, problem) in FAMILIES.items():
        row = rows[family]
        assert not row["error"] and row["bad_cases"]["malformed_tool_call"], (family, row["bad_cases"])
        assert row["num_calls"] == 2 and row["timeline_breaks"] == 0, family
        assert row["final_answer"] == "\\boxed{4}" and row["num_tool_calls"] == 0, family  # the broken call did not run
        seen = json.dumps(row["messages"])
        assert UNPARSED_CALL_TOOL not in seen and "FunctionNotFoundError" not in seen, family
        tool_texts = [m["content"] for m in row["messages"] if m["role"] == "tool"]
        assert any(f"was not run because {problem}." in t for t in tool_texts), (family, tool_texts)
        assistant = next(m for m in row["messages"] if m["role"] == "assistant")
        assert first.strip()[:40] in assistant["content"], family  # the model's own text stays
