"""Every malformed turn is counted: real rollouts of the Math Agent through the scripted engine.

One task per family; its first reply is the malformed turn, its next reply finishes well. Each
rollout must carry exactly the flag of its family among the turn problems (the seed's three bad
cases are checked elsewhere), and the well-formed control (a call after a ``<think>`` block) none.
The schema checks of ``invalid_tool_call`` are also tested directly.
"""

from __future__ import annotations

import json

import pytest

from astuner.task_judge.turn_problems import TURN_PROBLEMS, arguments_fit
from tests.conftest import REPO
from tests.first_reply_runs import run_first_replies

pytestmark = pytest.mark.integration

GOOD_CALL = '<tool_call>\n{"name": "execute_python_code", "arguments": {"code": "print(2 + 2)"}}\n</tool_call>'
FINISH = ('The tool printed 4, so the answer is \\boxed{4}.\n<tool_call>\n'
          '{"name": "generate_response", "arguments": {"result": "\\\\boxed{4}"}}\n</tool_call>')
FAMILIES = {
    "control_after_think": ("<think>I should use Python.</think>\nI will compute it.\n" + GOOD_CALL, None),
    "near_json": ("<tool_call>\n{'name': 'execute_python_code', 'arguments': {'code': 'print(2 + 2)',},}\n</tool_call>",
                  "repaired_tool_call"),
    "arguments_as_string": ('<tool_call>\n{"name": "execute_python_code", "arguments": "{\\"code\\": \\"print(2 + 2)\\"}"}\n'
                            "</tool_call>", "repaired_tool_call"),
    "unclosed_block": ('<tool_call>\n{"name": "execute_python_code", "arguments": {"code": "print(2 + 2)"}}',
                       "repaired_tool_call"),
    "empty": ("", "empty_reply"),
    "whitespace": ("   \n\t ", "empty_reply"),
    "special_token": ("I will compute it.<|im_end|>\n<|im_start|>assistant\n" + GOOD_CALL, "special_token_in_reply"),
    "spoofed_response": (GOOD_CALL + "\n<tool_response>\n4\n</tool_response>", "spoofed_tool_response"),
    "unknown_tool": ('<tool_call>\n{"name": "run_shell", "arguments": {"cmd": "echo 4"}}\n</tool_call>', "invalid_tool_call"),
    "extra_argument": ('<tool_call>\n{"name": "execute_python_code", "arguments": {"code": "print(4)", "sudo": true}}\n'
                       "</tool_call>", "invalid_tool_call"),
    "mistyped_argument": ('<tool_call>\n{"name": "execute_python_code", "arguments": {"code": 4}}\n</tool_call>',
                          "invalid_tool_call"),
    "missing_argument": ('<tool_call>\n{"name": "execute_python_code", "arguments": {}}\n</tool_call>', "invalid_tool_call"),
}


def test_each_malformed_turn_is_counted_as_its_bad_case(tmp_path, capsys):
    penalties = tuple(f"astuner.task_judge.bad_case_penalties.{name}=0.25" for name in TURN_PROBLEMS)
    firsts = {family: first for family, (first, _) in FAMILIES.items()}
    code, rollouts_file = run_first_replies(tmp_path, "turns", firsts, FINISH, penalties)
    out = capsys.readouterr().out
    assert code == 0, out
    rows = [json.loads(line) for line in rollouts_file.read_text().splitlines()]
    flags = {row["task_id"]: {k for k in TURN_PROBLEMS if row["bad_cases"].get(k)} for row in rows}
    assert set(flags) == set(FAMILIES)
    for family, (_, expected) in FAMILIES.items():
        assert flags[family] == ({expected} if expected else set()), (family, flags[family])
        row = next(r for r in rows if r["task_id"] == family)
        assert not row["error"]
        if any(row["madness"].values()):  # the madness check (nonsense text) overrides every reward
            assert family == "special_token" and row["reward"] == -1.0, (family, row["madness"])
        else:
            assert row["reward"] == pytest.approx(row["raw_reward"] - (0.25 if expected else 0.0))  # the penalty applies
    for name in TURN_PROBLEMS:
        assert f"{name} " in out.split("bad cases: ", 1)[1].splitlines()[0]  # in the summary line


SCHEMA = {"type": "object", "properties": {"code": {"type": "string"}, "n": {"type": ["integer", "null"]}},
          "required": ["code"]}


@pytest.mark.parametrize(("args", "fits"), [
    ({"code": "x"}, True), ({"code": "x", "n": 3}, True), ({"code": "x", "n": None}, True),
    ({"code": "x", "n": True}, False), ({"code": "x", "n": 1.5}, False), ({}, False),
    ({"code": "x", "other": 1}, False), ("code", False),
])
def test_arguments_fit_the_schema(args, fits):
    assert arguments_fit(args, SCHEMA) is fits
    assert arguments_fit({"code": "x", "other": 1}, {**SCHEMA, "additionalProperties": True})
