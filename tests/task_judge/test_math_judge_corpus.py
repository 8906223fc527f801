"""The math judge's two checkers on a corpus of answers: the rule, math-verify, and their combination.

Every case has the verdict a careful human grader gives; the combined check (the rule, then
math-verify) must give it on every case, and the measurement shows that neither checker alone
does. Also: hostile inputs return quickly without raising, math-verify's outcomes are recorded,
and a hung or missing math-verify never hangs or fails a rollout.

Integration tier: math-verify runs in a child process.
"""

from __future__ import annotations

import threading
import time

import pytest

from astuner.config.schema import Config
from astuner.schema import Task, WorkflowOutput, WorkflowTask
from astuner.task_judge import MathAnswerAndLlmAsJudge, MathAnswerAsJudge, math_verify_guard
from astuner.task_judge.math_answer_as_judge import answers_match, check_answer, compared_text
from astuner.task_judge.math_verify_guard import MathVerifier

pytestmark = pytest.mark.integration

LONG_GARBAGE = "lorem ipsum " * 9000  # about 108,000 characters
CORPUS: list[tuple[str, str, str, bool]] = [
    # (category, final answer, reference, equal?)
    ("integer", r"\boxed{18}", "18", True),
    ("integer", r"\boxed{18}", "17", False),
    ("integer", r"The total is \boxed{18.0}.", "18", True),
    ("negative", r"\boxed{-3}", "-3", True),
    ("negative", r"\boxed{-18}", "18", False),
    ("negative", r"\boxed{-\frac{3}{4}}", "-0.75", True),
    ("fraction", r"\boxed{\frac{1}{2}}", "0.5", True),
    ("fraction", r"\boxed{\dfrac{3}{4}}", "3/4", True),
    ("fraction", "1/2", r"\frac{1}{2}", True),
    ("fraction", r"\boxed{\frac{10}{4}}", r"\frac{5}{2}", True),
    ("fraction", r"\boxed{2\frac{1}{2}}", r"\frac{5}{2}", True),
    ("fraction", r"\boxed{0.333}", "1/3", False),
    ("latex", r"\boxed{\frac{\sqrt{2}}{2}}", r"\frac{1}{\sqrt{2}}", True),
    ("latex", r"\boxed{2\sqrt{2}}", r"\sqrt{8}", True),
    ("latex", r"\boxed{x^2+2x+1}", "(x+1)^2", True),
    ("latex", r"\boxed{x^2+1}", "(x+1)^2", False),
    ("latex", r"\boxed{2\pi}", "6.283185307", True),
    ("latex", r"\boxed{x = 3}", "3", True),
    ("latex", r"first \boxed{17}, corrected: \boxed{18}", "18", True),
    ("latex", r"\boxed{\text{Yes}}", "yes", True),
    ("units", "18 dollars", "18", True),
    ("units", r"\boxed{\$18}", "18", True),
    ("units", r"\boxed{3 \text{ cm}}", "3", True),
    ("units", r"\boxed{5\text{ km/h}}", "5", True),
    ("units", r"\boxed{90^\circ}", "90", True),
    ("units", r"\boxed{\text{5 dollars}}", "5", True),
    ("percent", r"\boxed{50\%}", "50", True),
    ("percent", "50%", "50", True),
    ("percent", r"\boxed{40\%}", "50", False),
    ("commas", r"\boxed{1,600}", "1600", True),
    ("commas", r"The answer is \boxed{1{,}600}.", "1600", True),
    ("commas", r"\boxed{\$1,234.50}", "1234.5", True),
    ("commas", r"\boxed{3\,000}", "3000", True),
    ("scientific", r"\boxed{1.6e3}", "1600", True),
    ("scientific", r"\boxed{1.6 \times 10^{3}}", "1600", True),
    ("scientific", r"\boxed{1.6\cdot 10^3}", "1600", True),
    ("scientific", r"\boxed{2.5e-3}", "0.0025", True),
    ("scientific", r"\boxed{1.6e4}", "1600", False),
    ("set", r"\boxed{\{1, 2, 3\}}", r"\{3, 2, 1\}", True),
    ("set", r"\boxed{\{1, 2\}}", r"\{1, 2, 3\}", False),
    ("set", r"\boxed{17, 18}", "18", False),
    ("interval", r"\boxed{(0, 1]}", "(0, 1]", True),
    ("interval", r"\boxed{(-\infty, 3)}", r"(-\infty, 3)", True),
    ("interval", r"\boxed{[2, 5]}", "[2, 5)", False),
    ("interval", r"\boxed{(0, 1)}", "(0, 1]", False),
    ("garbage", "banana", "18", False),
    ("garbage", "eighteen", "18", False),
    ("garbage", "18 or 19", "18", False),
    ("garbage", r"\boxed{18 \text{ or } 19}", "18", False),
    ("garbage", "", "18", False),
    ("garbage", r"\boxed{}", "18", False),
    ("garbage", r"\boxed{\frac{1}{0}}", "0", False),
    ("hostile", LONG_GARBAGE, "18", False),
    ("hostile", LONG_GARBAGE + r"\boxed{18}", "18", True),
    ("hostile", r"\boxed{" * 100_000, "18", False),
    ("hostile", "{" * 50_000 + "18" + "}" * 50_000, "18", False),
    ("hostile", r"\boxed{" + "{" * 40 + "18" + "}" * 40 + "}", "18", False),
    ("hostile", "1" * 100_000, "18", False),
    ("hostile", r"\boxed{9^{9^{9^{9}}}}", "18", False),
]


def case_id(case: tuple[str, str, str, bool]) -> str:
    category, answer, reference, equal = case
    return f"{category}:{answer[:28]!r}={'=' if equal else '!'}{reference!r}"


@pytest.fixture(scope="module")
def verifier():
    v = MathVerifier(timeout_s=2.0)
    yield v
    v.close()


def make_task(reference: str) -> WorkflowTask:
    return WorkflowTask(task=Task(task_id="1", metadata={"reference_answer": reference}))


@pytest.mark.parametrize("case", CORPUS, ids=case_id)
def test_combined_check_is_right_on_every_case(case, verifier):
    _, answer, reference, equal = case
    started = time.monotonic()
    result = check_answer(answer, reference, verifier)
    assert result.matched is equal, result
    assert time.monotonic() - started < 4.0


def test_corpus_measurement_neither_checker_alone_suffices(verifier):
    """On this corpus: the rule alone, math-verify alone and the combination, counted."""
    assert len(CORPUS) >= 40
    rule_right = mv_right = combined_right = 0
    rule_only: list[str] = []
    mv_only: list[str] = []
    for case in CORPUS:
        _, answer, reference, equal = case
        by_rule = answers_match(answer, reference)
        by_mv = verifier.check(compared_text(answer), reference).matched
        rule_right += by_rule == equal
        mv_right += by_mv == equal
        combined_right += (by_rule or by_mv) == equal
        if by_rule == equal != by_mv:
            rule_only.append(case_id(case))
        if by_mv == equal != by_rule:
            mv_only.append(case_id(case))
    assert combined_right == len(CORPUS)
    assert rule_right < len(CORPUS) and mv_right < len(CORPUS)
    assert len(rule_only) >= 3 and len(mv_only) >= 3, (rule_only, mv_only)
    # neither checker ever says "equal" where the answer is wrong: a match from either is safe to count
    for case in CORPUS:
        _, answer, reference, equal = case
        if not equal:
            assert not answers_match(answer, reference)
            assert not verifier.check(compared_text(answer), reference).matched


def test_order_rule_first_then_math_verify(verifier):
    ruled = check_answer(r"\boxed{1,600}", "1600", verifier)
    assert (ruled.matched, ruled.decided_by, ruled.math_verify) == (True, "rule", "not_asked")
    verified = check_answer(r"\boxed{\frac{\sqrt{2}}{2}}", r"\frac{1}{\sqrt{2}}", verifier)
    assert (verified.matched, verified.decided_by, verified.math_verify) == (True, "math_verify", "match")
    neither = check_answer(r"\boxed{17}", "18", verifier)
    assert (neither.matched, neither.decided_by, neither.math_verify) == (False, "none", "no_match")
    off = check_answer(r"\boxed{\frac{\sqrt{2}}{2}}", r"\frac{1}{\sqrt{2}}", None)
    assert (off.matched, off.decided_by, off.math_verify) == (False, "none", "off")


def test_pathological_inputs_return_fast_without_raising(verifier):
    hostile = [
        "x" * 100_000,
        "{" * 100_000,
        r"\boxed{" * 100_000,
        r"\frac{" * 30_000,
        r"\text{" * 30_000,
        "1," * 50_000,
        "(" * 60 + "1" + ")" * 60,
    ]
    for text in hostile:
        started = time.monotonic()
        result = check_answer(text, "18", verifier)
        assert not result.matched
        assert time.monotonic() - started < 3.0, text[:20]
    assert check_answer("x" * 100_000, "18", verifier).math_verify == "skipped"
    assert "deeper than" in check_answer("(" * 60 + "1" + ")" * 60, "18", verifier).detail


def test_a_hung_comparison_is_killed_and_the_next_one_works():
    verifier = MathVerifier(timeout_s=1.0)
    try:
        assert verifier.check("1", "1").outcome == "match"  # the worker is up: start-up is not timed below
        started = time.monotonic()
        opinion = verifier.check("9^{9^{9^{9}}}", "18")  # sympy holds the GIL in one big-integer power
        assert opinion.outcome == "timeout" and "killed" in opinion.detail
        assert time.monotonic() - started < 3.0
        assert verifier.check(r"2\sqrt{2}", r"\sqrt{8}").outcome == "match"
    finally:
        verifier.close()


def test_concurrent_checks_from_threads_all_answered(verifier):
    pairs = [(r"\frac{\sqrt{2}}{2}", r"\frac{1}{\sqrt{2}}", "match"), ("17", "18", "no_match")] * 4
    results: dict[int, str] = {}

    def ask(i: int, answer: str, reference: str) -> None:
        results[i] = verifier.check(answer, reference).outcome

    threads = [threading.Thread(target=ask, args=(i, a, r)) for i, (a, r, _) in enumerate(pairs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert results == {i: expected for i, (_, _, expected) in enumerate(pairs)}


def test_missing_math_verify_leaves_the_rule_working(monkeypatch, tmp_path):
    broken = tmp_path / "worker.py"
    broken.write_text("import sys, json\nprint(json.dumps({'error': 'cannot import math_verify: test'}))\nsys.exit(1)\n")
    monkeypatch.setattr(math_verify_guard, "WORKER", broken)
    judge = MathAnswerAsJudge()
    task = make_task(r"\frac{1}{\sqrt{2}}")
    out = WorkflowOutput(metadata={"final_answer": r"\boxed{\frac{\sqrt{2}}{2}}"})
    assert judge.compute_reward(task, out) == (0.0, False)
    assert judge.check({"workflow_task": make_task("0.5"), "final_answer": r"\boxed{\frac{1}{2}}"}).matched  # the rule
    assert judge.stats() == {"decided_by/none": 1, "math_verify/unavailable": 1}
    assert "cannot import math_verify: test" in judge.verifier.unavailable_reason
    started = time.monotonic()
    assert judge.check({"workflow_task": task, "final_answer": r"\boxed{7}"}).math_verify == "unavailable"
    assert time.monotonic() - started < 0.5  # no restart attempt per call


def test_judge_records_which_checker_decided():
    judge = MathAnswerAsJudge()
    for answer, reference in ((r"\boxed{\frac{\sqrt{2}}{2}}", r"\frac{1}{\sqrt{2}}"), (r"\boxed{1,600}", "1600"), (r"\boxed{3}", "4")):
        judge.compute_reward(make_task(reference), WorkflowOutput(metadata={"final_answer": answer}))
    assert judge.stats() == {
        "decided_by/math_verify": 1, "math_verify/match": 1,
        "decided_by/rule": 1, "math_verify/not_asked": 1,
        "decided_by/none": 1, "math_verify/no_match": 1,
    }
    judge.verifier.close()


def test_judge_without_math_verify_is_the_rule_alone():
    class RuleOnly(MathAnswerAsJudge):
        use_math_verify = False

    judge = RuleOnly()
    task = make_task(r"\frac{1}{\sqrt{2}}")
    assert judge.compute_reward(task, WorkflowOutput(metadata={"final_answer": r"\boxed{\frac{\sqrt{2}}{2}}"})) == (0.0, False)
    assert judge.verifier is None and judge.stats() == {"decided_by/none": 1, "math_verify/off": 1}


def test_llm_judge_asks_math_verify_before_the_llm(monkeypatch):
    monkeypatch.delenv("ASTUNER_TEST_JUDGE_KEY", raising=False)  # asking the LLM would raise
    config = Config.model_validate({"astuner": {"task_judge": {"alien_llm_api_key_env": "ASTUNER_TEST_JUDGE_KEY",
                                                             "alien_llm_base_url": "http://127.0.0.1:9/v1"}}})
    judge = MathAnswerAndLlmAsJudge(config)
    task = make_task("(x+1)^2")
    assert judge.compute_reward(task, WorkflowOutput(metadata={"final_answer": r"\boxed{x^2+2x+1}"})) == (1.0, True)
    assert judge.stats()["decided_by/math_verify"] == 1
    judge.verifier.close()
