"""Bad-case flags, madness checks and penalties."""

from __future__ import annotations

import pytest

from astuner.schema import CallRecord
from astuner.task_judge import BAD_CASES, apply_penalties, compute_string_madness, detect_bad_cases, detect_madness

PY_CALL = '<tool_call>\n{"name": "execute_python_code", "arguments": {"code": "print(16 - 3 - 4)"}}\n</tool_call>'
FINISH_CALL = '<tool_call>\n{"name": "generate_response", "arguments": {"result": "\\\\boxed{9}"}}\n</tool_call>'


def call(text: str = "", tools: list[dict] | None = None, messages: list[dict] | None = None, malformed: bool = False) -> CallRecord:
    return CallRecord(
        prompt_ids=[1, 2],
        completion_ids=[],
        logprobs=[],
        finish_reason="stop",
        response_text=text,
        messages=messages or [],
        parsed_tool_calls=tools or [],
        malformed_tool_call=malformed,
    )


def py(code: str = "print(9)") -> dict:
    return {"name": "execute_python_code", "arguments": {"code": code}}


def finish(result: str = r"\boxed{9}") -> dict:
    return {"name": "generate_response", "arguments": {"result": result}}


def assistant_with_call(call_id: str, name: str) -> dict:
    return {
        "role": "assistant",
        "content": "",
        "tool_calls": [{"id": call_id, "type": "function", "function": {"name": name, "arguments": "{}"}}],
    }


def tool_result(stdout: str, name: str | None = "execute_python_code", call_id: str = "c1", blocks: bool = False) -> dict:
    text = f"<returncode>0</returncode><stdout>{stdout}</stdout><stderr></stderr>"
    message = {"role": "tool", "tool_call_id": call_id, "content": [{"type": "text", "text": text}] if blocks else text}
    if name is not None:
        message["name"] = name
    return message


def clean_rollout() -> list[CallRecord]:
    first_messages = [{"role": "system", "content": "solve"}, {"role": "user", "content": "eggs?"}]
    second_messages = first_messages + [assistant_with_call("c1", "execute_python_code"), tool_result("9\n")]
    return [
        call("I will compute it.\n" + PY_CALL, [py()], first_messages),
        call(FINISH_CALL, [finish()], second_messages),
    ]


# --- bad cases --------------------------------------------------------------------------------


def test_clean_rollout_has_no_bad_case():
    flags = detect_bad_cases(clean_rollout())
    assert set(flags) == set(BAD_CASES)
    assert not any(flags.values())


def test_malformed_tool_call():
    calls = clean_rollout() + [call("<tool_call>{oops", malformed=True)]
    assert detect_bad_cases(calls)["malformed_tool_call"]


@pytest.mark.parametrize("stdout", ["", "  \n"])
def test_empty_stdout_flagged(stdout):
    calls = [call(PY_CALL, [py("x = 9")], [assistant_with_call("c1", "execute_python_code"), tool_result(stdout)])]
    assert detect_bad_cases(calls)["empty_tool_stdout"]


def test_empty_stdout_found_by_call_id_blocks_and_final_messages():
    unnamed = [assistant_with_call("c7", "execute_python_code"), tool_result("", name=None, call_id="c7", blocks=True)]
    assert detect_bad_cases([call(messages=unnamed)])["empty_tool_stdout"]
    assert detect_bad_cases([], final_messages=[tool_result("")])["empty_tool_stdout"]


def test_empty_stdout_of_other_tool_not_flagged():
    shell = [assistant_with_call("c2", "execute_shell_command"), tool_result("", name=None, call_id="c2")]
    assert not detect_bad_cases([call(messages=shell)])["empty_tool_stdout"]
    assert not detect_bad_cases([call(messages=[tool_result("", name="execute_shell_command")])])["empty_tool_stdout"]
    not_python_format = {"role": "tool", "name": "execute_python_code", "content": "Error: timeout"}
    assert not detect_bad_cases([call(messages=[not_python_format])])["empty_tool_stdout"]


def test_answer_in_same_turn_as_tool_call():
    both_tools = call(PY_CALL + "\n" + FINISH_CALL, [py(), finish()])
    assert detect_bad_cases([both_tools])["answer_before_tool_response"]
    boxed_text = call(PY_CALL + "\nSo the answer is \\boxed{9}.", [py()])
    assert detect_bad_cases([boxed_text])["answer_before_tool_response"]
    boxed_spaced = call("\\boxed {9}\n" + PY_CALL, [py()])
    assert detect_bad_cases([boxed_spaced])["answer_before_tool_response"]


def test_answer_alone_or_box_inside_code_is_fine():
    box_in_code = '<tool_call>\n{"name": "execute_python_code", "arguments": {"code": "print(\'\\\\boxed{9}\')"}}\n</tool_call>'
    assert not detect_bad_cases([call(box_in_code, [py("print('\\\\boxed{9}')")])])["answer_before_tool_response"]
    assert not detect_bad_cases([call(FINISH_CALL, [finish()])])["answer_before_tool_response"]
    assert not detect_bad_cases([call(r"The answer is \boxed{9}.")])["answer_before_tool_response"]


def test_apply_penalties():
    flags = {"malformed_tool_call": True, "empty_tool_stdout": False, "answer_before_tool_response": True}
    penalties = {"malformed_tool_call": 0.2, "empty_tool_stdout": 0.5, "answer_before_tool_response": 0.1, "other": 9}
    assert apply_penalties(1.0, flags, penalties) == pytest.approx(0.7)
    assert apply_penalties(1.0, flags, {}) == 1.0
    assert apply_penalties(0.0, {"nonsense": True}, {"nonsense": 1.0}) == -1.0


# --- madness ----------------------------------------------------------------------------------

SANE = [
    r"Janet keeps 3 eggs for breakfast and bakes with 4, so she sells 16 - 3 - 4 = 9 eggs for $2 each: \boxed{18}.",
    PY_CALL,
    "I will compute it with Python.\n" + '<tool_call>\n{"name": "execute_python_code", "arguments": {"code": '
    '"apples = 12\\nleft = apples - 3\\nprint(left + 5)"}}\n</tool_call>',
    "The angle is θ = π/2, so x ≈ 3.14 × 2 ≤ 7 and the price is 5 € — done…",
    "",
]
CHINESE = (
    "小明早上去市场买了十二个苹果，回家路上送给邻居三个，下午又去超市买了五个橘子和两个梨。"
    "晚上妈妈问他家里一共有多少个水果，他先算出剩下的苹果数量，再把橘子和梨加起来，"
    "最后得出答案并写在作业本上，老师第二天检查时表扬了他的计算过程非常清楚。"
)


@pytest.mark.parametrize("text", SANE + [CHINESE])
def test_sane_text_scores_zero(text):
    assert compute_string_madness(text, ["nonsense"]) == 0


@pytest.mark.parametrize(
    "text",
    [
        "The answer is 18.<|im_start|>user\nthanks",
        "Result: " + "a" * 400,
        "Let me think " + "wqd " * 40,
        "ok " + "ab" * 150,
        "ผลลัพธ์คือสิบแปด ตอบ 18",
        "Ответ: восемнадцать",
    ],
)
def test_nonsense_flagged(text):
    assert compute_string_madness(text, ["nonsense"]) == -1


def test_non_ascii_modifier_allows_foreign_text():
    thai = "ผลลัพธ์คือสิบแปด ตอบ 18"
    assert compute_string_madness(thai, ["nonsense", "non_ascii"]) == 0
    assert compute_string_madness(thai, ["nonsense", "allow_non_ascii"]) == 0
    assert compute_string_madness("<|im_start|>" + thai, ["nonsense", "non_ascii"]) == -1
    assert compute_string_madness(thai, []) == 0


def test_format_type_1():
    good = "<think>add them</think>\n```python\nprint(1 + 2)\n```"
    assert compute_string_madness(good, ["format_type_1"]) == 0
    assert compute_string_madness("```python\nprint(3)\n```", ["format_type_1"]) == -1
    two_blocks = good + "\n```python\nprint(4)\n```"
    assert compute_string_madness(two_blocks, ["format_type_1"]) == -1
    trailing = good + "\nand that is all"
    assert compute_string_madness(trailing, ["format_type_1"]) == -1
    assert compute_string_madness("<|im_start|>x", ["nonsense", "format_type_1"]) == -2


def test_unknown_check_is_an_error():
    with pytest.raises(ValueError, match="nonsens"):
        compute_string_madness("x", ["nonsens"])


def test_detect_madness_over_calls():
    calls = clean_rollout()
    assert detect_madness(calls, ["nonsense", "wrong_toolcall"]) == {"nonsense": False, "wrong_toolcall": False}
    mad = calls + [call("wqd " * 40)]
    assert detect_madness(mad, ["nonsense"]) == {"nonsense": True}
    assert detect_madness(calls, ["non_ascii"]) == {}


def test_wrong_toolcall():
    unparsed = call("<tool_call>\n{name: execute_python_code\n</tool_call>")
    assert detect_madness([unparsed], ["wrong_toolcall"])["wrong_toolcall"]
    bad_args = call(PY_CALL, [{"name": "execute_python_code", "arguments": "print(1)"}])
    assert detect_madness([bad_args], ["wrong_toolcall"])["wrong_toolcall"]
    no_name = call(PY_CALL, [{"arguments": {}}])
    assert detect_madness([no_name], ["wrong_toolcall"])["wrong_toolcall"]
    flagged = call(PY_CALL, [py()], malformed=True)
    assert detect_madness([flagged], ["wrong_toolcall"])["wrong_toolcall"]
    assert not detect_madness([call(PY_CALL, [py()])], ["wrong_toolcall"])["wrong_toolcall"]
