"""Hermes tool-call parsing: well-formed, repairable and malformed model output."""

import random

import pytest

from astuner.tool_call_parser import MAX_DEPTH, nesting_depth, parse_tool_calls


def test_plain_text_has_no_calls():
    p = parse_tool_calls("  The answer is \\boxed{4}.  ")
    assert p.text == "The answer is \\boxed{4}." and p.tool_calls == [] and not p.malformed


def test_two_calls_and_text():
    p = parse_tool_calls(
        'First.\n<tool_call>\n{"name": "a", "arguments": {"x": 1}}\n</tool_call>\n'
        '<tool_call>{"name": "b", "arguments": "{\\"y\\": 2}"}</tool_call>'
    )
    assert p.text == "First."
    assert p.tool_calls == [{"name": "a", "arguments": {"x": 1}}, {"name": "b", "arguments": {"y": 2}}]
    assert not p.malformed


def test_near_json_is_repaired():
    p = parse_tool_calls("<tool_call>{'name': 'f', 'arguments': {'code': 'print(1)',},}</tool_call>")
    assert p.tool_calls == [{"name": "f", "arguments": {"code": "print(1)"}}] and not p.malformed


def test_unclosed_block_with_complete_json_is_accepted():
    p = parse_tool_calls('<tool_call>\n{"name": "f", "arguments": {"code": "print(2)"}}')
    assert p.tool_calls == [{"name": "f", "arguments": {"code": "print(2)"}}]


def test_garbage_is_malformed_and_stays_in_text():
    for bad in ("<tool_call>not json</tool_call>", "<tool_call>[1, 2]</tool_call>", "<tool_call>{\"arguments\": {}}</tool_call>",
                "<tool_call></tool_call>", "oops </tool_call>", '<tool_call>{"name": "f", "arguments": 5}</tool_call>'):
        p = parse_tool_calls(bad)
        assert p.malformed, bad
        assert p.tool_calls == []
        assert "tool_call>" in p.text


@pytest.mark.parametrize("body", [
    '{"name": "execute_python_code", "arguments": {"code": ' + "[" * 100_000 + "]" * 100_000 + "}}",
    '{"name": "execute_python_code", "arguments": ' + '{"a": ' * 5_000 + "1" + "}" * 5_000 + "}",
    '{"name": "x", "arguments": "' + '{\\"a\\": ' * 5_000 + "1" + "}" * 5_000 + '"}',
    "[" * 200_000,
])
def test_deep_nesting_is_malformed_not_a_crash(body):
    """A deeply nested argument raised RecursionError inside the JSON parsers and crashed the rollout."""
    parsed = parse_tool_calls(f"<tool_call>{body}</tool_call>")
    assert parsed.malformed and parsed.tool_calls == []


def test_nesting_depth_ignores_brackets_in_strings():
    assert nesting_depth('{"a": "[[[[{{{\\"", "b": [1, {"c": 2}]}') == 3
    assert nesting_depth("[" * (MAX_DEPTH + 1)) == MAX_DEPTH + 1
    ok = parse_tool_calls('<tool_call>{"name": "f", "arguments": {"v": ' + "[" * 60 + "]" * 60 + "}}</tool_call>")
    assert not ok.malformed and ok.tool_calls[0]["name"] == "f"


PIECES = ["<tool_call>", "</tool_call>", "{", "}", "[", "]", '"', "\\", ":", ",", "name", "arguments",
          '"name"', '"arguments"', '"execute_python_code"', "print(1)", "'", "\n", " ", "<|im_end|>", "null",
          "1e999", "-0", "true", "\u0000", "\ud800", "é", "```json", "```", "<tool_response>", "<think>"]


def test_random_garbage_never_raises():
    """A seeded fuzz over tag fragments and JSON tokens: parsing returns, whatever the input."""
    rng = random.Random(20261206)
    for _ in range(3000):
        text = "".join(rng.choice(PIECES) for _ in range(rng.randint(0, 60)))
        parsed = parse_tool_calls(text)
        assert isinstance(parsed.text, str) and isinstance(parsed.tool_calls, list)
        for call in parsed.tool_calls:
            assert isinstance(call["name"], str) and call["name"] and isinstance(call["arguments"], dict)
