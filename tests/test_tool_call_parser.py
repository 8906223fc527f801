"""Hermes tool-call parsing: well-formed, repairable and malformed model output."""

from astuner.tool_call_parser import parse_tool_calls


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
