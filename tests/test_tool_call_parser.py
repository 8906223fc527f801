"""Hermes tool-call parsing: well-formed, repairable and malformed model output.

The examples pin known cases; the hypothesis properties at the end fuzz the parser with arbitrary
text, well-formed calls and corrupted calls. They run derandomized (the same examples on every
run, no example database) with bounded example counts, so the module takes a few seconds.
"""

import json
import time
from typing import Any, Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from astuner.tool_call_parser import MAX_DEPTH, MAX_REPAIR_CHARS, ParsedCompletion, nesting_depth, parse_tool_calls


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


@pytest.mark.parametrize("body", [
    '{"name": "f", "arguments": {"n": ' + "1" * 5_000 + "}}",
    '{"name": "f", "arguments": {"n": ' + "1" * 5_000 + "}",
])
def test_number_beyond_the_int_digit_limit_is_not_a_crash(body):
    """json.loads raises ValueError (not JSONDecodeError) past Python's 4300-digit limit."""
    parsed = parse_tool_calls(f"<tool_call>{body}</tool_call>")
    assert parsed.malformed and parsed.tool_calls == []


@pytest.mark.parametrize("unit", ['x"', '"x', "'x", '{"a": "b\\", ', '["x", "'])
def test_pathological_repairs_stay_fast(unit):
    """Unbalanced quotes under a few brackets: json_repair's time grows with the square of the
    length (8 KB took 4 s, 40 KB 80 s); the repair budget keeps a completion's parse bounded."""
    body = '{"name": "f", "arguments": {"code": ' + '{"a": [' * 20 + unit * (64_000 // len(unit))
    start = time.perf_counter()
    for text in (f"<tool_call>{body}", f"<tool_call>{body}</tool_call>", f"<tool_call>{body[:3000]}</tool_call>" * 20):
        parsed = parse_tool_calls(text)
        assert parsed.malformed or parsed.repaired
    assert time.perf_counter() - start < 5.0


def test_a_repair_within_the_budget_still_happens():
    code = "\n".join(["x = 1"] * ((MAX_REPAIR_CHARS - 100) // 7))
    near = "<tool_call>{'name': 'f', 'arguments': {'code': '" + code.replace("\n", "\\n") + "'}}</tool_call>"
    parsed = parse_tool_calls(near)
    assert parsed.repaired and not parsed.malformed and parsed.tool_calls[0]["arguments"]["code"] == code
    too_long = near.replace("x = 1", "x = 1" * 3)
    assert parse_tool_calls(too_long).malformed


# ---- properties (hypothesis) ------------------------------------------------------------------

FUZZ = settings(derandomize=True, database=None, deadline=None, max_examples=150,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
"""Derandomized (the same examples on every run, none stored between runs) and bounded, so the
module takes a few seconds even on a busy 2-core machine."""

TAGS = ("<tool_call>", "</tool_call>")
PIECES = ["<tool_call>", "</tool_call>", "{", "}", "[", "]", '"', "\\", ":", ",", "name", "arguments",
          '"name"', '"arguments"', '"execute_python_code"', "print(1)", "'", "\n", " ", "<|im_end|>", "null",
          "1e999", "-0", "true", "\u0000", "\ud800", "é", "```json", "```", "<tool_response>", "<think>",
          "</think>", '{"name": "f", "arguments": {}}', "[" * MAX_DEPTH, "]" * MAX_DEPTH, "parameters"]


def _seconds_allowed(text: str) -> float:
    """A parse is linear apart from the budgeted repair: 1 MB scans in well under a second."""
    return 2.0 + len(text) / 500_000


fragments = st.one_of(
    st.sampled_from(PIECES),
    st.text(st.characters(), max_size=20),
    st.integers(MAX_DEPTH - 2, MAX_DEPTH + 2).map(lambda n: '{"a": ' * n),
)
"""Tag, JSON and control fragments, arbitrary unicode (lone surrogates included), nesting near the bound."""
plain = st.text(st.characters(exclude_categories=["Cs"]), max_size=40).filter(lambda t: "tool_call>" not in t)
"""Text around a call: anything but a tag."""
soup = st.lists(
    st.tuples(fragments, st.sampled_from([1, 1, 1, 2, 7, 300, 20_000])).map(lambda p: p[0] * p[1]),
    max_size=40,
).map("".join)
"""Fragments in any order, repeats making some of it large (up to about a megabyte)."""
RUNAWAY_STARTS = ["", '{"name": "f", "arguments": {"code": ', '{"a": [' * 8, '{"a": [' * 31]
RUNAWAY_UNITS = ["9", '"x', 'x"', "'x", '{"a": "b\\", ', '["x", "', "{", "[", '"', "\\", ",", ":", "x", " "]
"""Pieces a degenerate policy repeats; several cost json_repair quadratic time, and a long run of
digits is past the int-digit limit."""
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | plain,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(plain, inner, max_size=4),
    max_leaves=12,
)
calls = st.fixed_dictionaries({
    "name": plain.filter(bool),
    "arguments": st.dictionaries(plain, json_values, max_size=5),
}).filter(lambda c: nesting_depth(json.dumps(c)) <= MAX_DEPTH)
dumps = st.sampled_from([
    json.dumps,
    lambda o: json.dumps(o, ensure_ascii=False),
    lambda o: json.dumps(o, indent=2),
    lambda o: "\n" + json.dumps(o, separators=(",", ":"), ensure_ascii=False) + "\n",
])
"""The spellings of well-formed JSON a model may produce."""


def _block(call: dict, dump: Callable[[Any], str] = json.dumps) -> str:
    return f"<tool_call>{dump(call)}</tool_call>"


def _check_consistent(completion: str, parsed: ParsedCompletion) -> None:
    """What holds for any input: types, no tag left in unflagged text, nothing dropped silently."""
    assert isinstance(parsed.text, str) and isinstance(parsed.tool_calls, list)
    for call in parsed.tool_calls:
        assert set(call) == {"name", "arguments"}
        assert isinstance(call["name"], str) and call["name"] and isinstance(call["arguments"], dict)
    if not parsed.malformed:
        assert not any(tag in parsed.text for tag in TAGS), "a tag survived without the turn being flagged"
    if parsed.repaired:
        assert parsed.tool_calls, "repaired is only said of an accepted call"
    if not parsed.tool_calls and not parsed.malformed:
        assert parsed.text == completion.strip() and not parsed.repaired, "text vanished without a call or a flag"


@FUZZ
@given(soup)
def test_any_text_parses_consistently_and_in_bounded_time(completion):
    start = time.perf_counter()
    parsed = parse_tool_calls(completion)
    assert time.perf_counter() - start < _seconds_allowed(completion)
    _check_consistent(completion, parsed)


@FUZZ
@given(plain, st.sampled_from(RUNAWAY_STARTS), st.sampled_from(RUNAWAY_UNITS), st.sampled_from([1, 300, 5_000, 20_000]),
       st.sampled_from(["", "</tool_call>", "}}</tool_call>"]))
def test_runaway_block_is_flagged_in_bounded_time(before, start_of_call, unit, repeats, end):
    """A block that starts like a call and degenerates into one repeated piece (runaway sampling)."""
    completion = f"{before}<tool_call>{start_of_call}{unit * repeats}{end}"
    start = time.perf_counter()
    parsed = parse_tool_calls(completion)
    assert time.perf_counter() - start < _seconds_allowed(completion)
    _check_consistent(completion, parsed)


@FUZZ
@given(st.lists(st.tuples(plain, calls, dumps), min_size=1, max_size=3), plain)
def test_well_formed_calls_parse_back_exactly_and_unflagged(parts, tail):
    completion = "".join(text + _block(call, dump) for text, call, dump in parts) + tail
    parsed = parse_tool_calls(completion)
    assert parsed.tool_calls == [call for _, call, _ in parts]
    assert not parsed.malformed and not parsed.repaired
    assert parsed.text == ("".join(text for text, _, _ in parts) + tail).strip()


@FUZZ
@given(plain, calls, dumps)
def test_well_formed_call_after_a_think_block_is_not_flagged(thought, call, dump):
    completion = f"<think>\n{thought}\n</think>\n\n{_block(call, dump)}"
    parsed = parse_tool_calls(completion)
    assert parsed.tool_calls == [call] and not parsed.malformed and not parsed.repaired
    assert parsed.text == f"<think>\n{thought}\n</think>"


def _strip_last_brace(body: str) -> str:
    return body[: body.rindex("}")]


CORRUPTIONS = {
    "missing closing brace": lambda call: f"<tool_call>{_strip_last_brace(json.dumps(call))}</tool_call>",
    "missing closing tag": lambda call: f"<tool_call>{json.dumps(call)}",
    "single quotes": lambda call: _block(call).replace('"', "'"),
    "trailing comma": lambda call: f"<tool_call>{_strip_last_brace(json.dumps(call))},}}</tool_call>",
    "arguments as a JSON string": lambda call: _block({"name": call["name"], "arguments": json.dumps(call["arguments"])}),
    "parameters for arguments": lambda call: _block({"name": call["name"], "parameters": call["arguments"]}),
    "json fence inside the tags": lambda call: f"<tool_call>```json\n{json.dumps(call)}\n```</tool_call>",
    "stray closing tag": lambda call: _block(call) + "</tool_call>",
    "second block never closed": lambda call: _block(call) + "<tool_call>",
    "nested opening tag": lambda call: "<tool_call>" + _block(call),
    "too deep": lambda call: _block({**call, "arguments": {"v": json.loads("[" * MAX_DEPTH + "]" * MAX_DEPTH)}}),
}


@FUZZ
@given(calls, st.sampled_from(sorted(CORRUPTIONS)), plain)
def test_corrupted_calls_are_always_flagged(call, corruption, before):
    """A broken call may be repaired (and then run) but is never accepted as if it were well formed."""
    completion = before + CORRUPTIONS[corruption](call)
    parsed = parse_tool_calls(completion)
    _check_consistent(completion, parsed)
    assert parsed.malformed or parsed.repaired, corruption


@FUZZ
@given(calls, st.integers(0, len(json.dumps({"name": "", "arguments": {}})) - 1), plain)
def test_truncated_calls_are_always_flagged(call, keep_from_end, after):
    """A call cut anywhere (a completion that ran out of tokens) is flagged, with or without its tag."""
    body = json.dumps(call)
    cut = body[: len(body) - 1 - keep_from_end]
    for completion in (f"<tool_call>{cut}</tool_call>{after}", f"<tool_call>{cut}"):
        parsed = parse_tool_calls(completion)
        _check_consistent(completion, parsed)
        assert parsed.malformed or parsed.repaired


@FUZZ
@given(calls, plain, st.sampled_from(TAGS))
def test_a_tag_inside_an_argument_is_kept_or_the_turn_is_malformed(call, code, tag):
    """Code that prints a tag. An opening tag inside a JSON string is harmless; a closing one ends
    the block there, and what follows it is a stray tag: malformed, never a silently changed call."""
    call = {**call, "arguments": {**call["arguments"], "code": code + tag}}
    completion = _block(call)
    parsed = parse_tool_calls(completion)
    _check_consistent(completion, parsed)
    if tag == "<tool_call>":
        assert parsed.tool_calls == [call] and not parsed.malformed and not parsed.repaired
    else:
        assert parsed.malformed and parsed.tool_calls != [call]


@FUZZ
@given(st.one_of(st.integers(1, 3 * MAX_DEPTH), st.sampled_from([1_000, 100_000])), st.sampled_from(["[", '{"k": ']))
def test_nesting_is_accepted_up_to_max_depth_and_malformed_beyond(depth, opener):
    """The call's own object and its arguments are two levels; the argument value adds ``depth``."""
    closer = "]" if opener == "[" else "}"
    value = opener * depth + "1" + closer * depth
    parsed = parse_tool_calls(f'<tool_call>{{"name": "f", "arguments": {{"v": {value}}}}}</tool_call>')
    if depth + 2 <= MAX_DEPTH:
        assert parsed.tool_calls and not parsed.malformed and not parsed.repaired
    else:
        assert parsed.malformed and parsed.tool_calls == []
