"""The reward rubric gives exactly the reward of the formula it replaced, and names each term's part.

The formula before the rubric (``astuner/rollout.py`` until issue 18): start from the judge's
``raw_reward``, subtract ``task_judge.bad_case_penalties[name]`` for every flagged bad case in flag
order, then, if any madness check flagged the rollout, replace everything by
``rollout.agent_madness_reward``. ``old_reward`` below spells it out; every reward here must equal
it as the same float, not approximately.
"""

from __future__ import annotations

import itertools
import json
from functools import reduce

import pytest

from astuner.cli import main
from astuner.config.schema_task import BadCasePenaltiesConfig
from astuner.rollout import RolloutResult, summarize
from astuner.task_judge.bad_cases import BAD_CASES, apply_penalties, detect_bad_cases
from astuner.task_judge.madness import detect_madness
from astuner.task_judge.rubric import MADNESS_TERM, shaping_rubric
from astuner.task_judge.turn_problems import TURN_PROBLEMS, detect_turn_problems
from tests.conftest import REPO
from tests.task_judge.test_bad_cases import FINISH_CALL, PY_CALL, assistant_with_call, call, clean_rollout, finish, py, tool_result

FLAGS = (*BAD_CASES, *TURN_PROBLEMS)
PENALTY_SETTINGS = [
    {},
    {"empty_tool_stdout": 0.5},
    {"malformed_tool_call": 0.2, "empty_tool_stdout": 0.1, "answer_before_tool_response": 0.3},
    {name: 0.1 * (i + 1) for i, name in enumerate(FLAGS)},
    {name: 0.25 for name in TURN_PROBLEMS},
]
RAW_REWARDS = (1.0, 0.0, 0.7, -0.3)
MADNESS_REWARDS = (-1.0, 0.0)


def old_reward(raw: float, bad_cases: dict, madness: dict, penalties: dict, madness_reward: float) -> float:
    reward = float(raw)
    for name, flagged in bad_cases.items():
        if flagged and name in penalties:
            reward -= float(penalties[name])
    if any(madness.values()):
        reward = madness_reward
    return float(reward)


def configured(penalties: dict) -> dict[str, float]:
    """``bad_case_penalties`` as the rollout runner reads it: every key, in config order."""
    return BadCasePenaltiesConfig(**penalties).model_dump()


def flags_of(calls: list, checklist: tuple[str, ...] = ("nonsense",)) -> tuple[dict, dict]:
    """The rollout runner's flags for ``calls``: bad cases then turn problems, and madness."""
    return {**detect_bad_cases(calls), **detect_turn_problems(calls)}, detect_madness(calls, list(checklist))


def built_rollouts() -> dict[str, list]:
    """Rollouts with several flag combinations, from the bad-case tests' helpers."""
    empty_stdout = [assistant_with_call("c1", "execute_python_code"), tool_result("")]
    return {
        "clean": clean_rollout(),
        "malformed": clean_rollout() + [call("<tool_call>{oops", malformed=True)],
        "empty_stdout": [call(PY_CALL, [py("x = 9")], empty_stdout), call(FINISH_CALL, [finish()])],
        "answer_with_call": [call(PY_CALL + "\n" + FINISH_CALL, [py(), finish()])],
        "three_and_empty_reply": [
            call("<tool_call>{oops", malformed=True),
            call(PY_CALL + "\nSo the answer is \\boxed{9}.", [py()], empty_stdout),
            call(""),
        ],
        "spoofed_and_special": [call(PY_CALL + "\n<tool_response>9</tool_response><|im_end|>", [py()])],
        "mad": clean_rollout() + [call("wqd " * 40)],
        "mad_and_malformed": [call("<tool_call>{oops", malformed=True), call("wqd " * 40)],
    }


def test_built_rollouts_cover_flags_and_madness():
    seen = {name for calls in built_rollouts().values() for name, on in flags_of(calls)[0].items() if on}
    assert seen >= {*BAD_CASES, "empty_reply", "special_token_in_reply", "spoofed_tool_response"}
    assert flags_of(built_rollouts()["mad"])[1] == {"nonsense": True}
    assert flags_of(built_rollouts()["malformed"])[1] == {"nonsense": False}


@pytest.mark.parametrize("penalties", PENALTY_SETTINGS)
@pytest.mark.parametrize("madness_reward", MADNESS_REWARDS)
def test_built_rollouts_score_as_before(penalties, madness_reward):
    rubric = shaping_rubric(configured(penalties), madness_reward)
    for label, calls in built_rollouts().items():
        bad_cases, madness = flags_of(calls)
        for raw in RAW_REWARDS:
            score = rubric.score(raw, bad_cases, madness)
            expected = old_reward(raw, bad_cases, madness, configured(penalties), madness_reward)
            before = apply_penalties(raw, bad_cases, configured(penalties))
            assert score.reward == expected, (label, raw)
            assert score.reward == (madness_reward if any(madness.values()) else before), (label, raw)
            assert_terms_add_up(score, raw, bad_cases, madness, penalties, madness_reward)


def test_every_flag_combination_scores_as_before():
    """All 2**8 bad-case combinations, with and without madness, for each setting: the same floats."""
    for penalties, madness_reward, raw in itertools.product(PENALTY_SETTINGS, MADNESS_REWARDS, RAW_REWARDS):
        rubric = shaping_rubric(configured(penalties), madness_reward)
        for bits in itertools.product((False, True), repeat=len(FLAGS) + 1):
            bad_cases, madness = dict(zip(FLAGS, bits[:-1])), {"nonsense": bits[-1], "wrong_toolcall": False}
            score = rubric.score(raw, bad_cases, madness)
            assert score.reward == old_reward(raw, bad_cases, madness, configured(penalties), madness_reward)
            assert_terms_add_up(score, raw, bad_cases, madness, penalties, madness_reward)


def assert_terms_add_up(score, raw, bad_cases, madness, penalties, madness_reward) -> None:
    assert list(score.terms) == [*FLAGS, MADNESS_TERM]
    if any(madness.values()):
        assert score.terms[MADNESS_TERM] == madness_reward - raw
        assert all(score.terms[name] == 0.0 for name in FLAGS)
        return
    assert score.terms[MADNESS_TERM] == 0.0
    for name in FLAGS:
        assert score.terms[name] == (-penalties.get(name, 0.0) if bad_cases[name] else 0.0), name
    assert reduce(lambda total, part: total + part, score.terms.values(), float(raw)) == score.reward
    assert sum(score.terms.values()) == pytest.approx(score.reward - raw, abs=1e-12)


def test_flags_without_a_term_and_terms_without_a_flag_change_nothing():
    rubric = shaping_rubric({"malformed_tool_call": 0.5}, -1.0)
    score = rubric.score(1.0, {"nonsense": True, "other": True}, {})
    assert (score.reward, score.terms) == (1.0, {"malformed_tool_call": 0.0, MADNESS_TERM: 0.0})
    assert rubric.score(1.0, {}, {"nonsense": False}).reward == 1.0


def test_summary_means_each_term_over_finished_rollouts():
    def finished(i: int, terms: dict[str, float]) -> RolloutResult:
        return RolloutResult(task_id=str(i), repeat_index=0, rollout_id=f"{i}-0", reward_terms=terms)

    results = [
        finished(0, {"empty_tool_stdout": -0.5, MADNESS_TERM: 0.0}),
        finished(1, {"empty_tool_stdout": 0.0, MADNESS_TERM: -2.0}),
        RolloutResult(task_id="2", repeat_index=0, rollout_id="2-0", error="boom"),
    ]
    s = summarize(results)
    assert (s["reward_term/empty_tool_stdout"], s[f"reward_term/{MADNESS_TERM}"]) == (-0.25, -1.0)
    assert not any(key.startswith("reward_term/") for key in summarize(results[2:]))


@pytest.mark.integration
def test_rollouts_of_the_offline_math_agent_score_as_before(tmp_path):
    """Through the rollout runner: the offline tutorial (empty stdout and answer-before-response
    bad cases) with penalties set; every reward is the old formula's and the summary's term means
    add up to the reward mean minus the raw reward mean."""
    penalties = {"empty_tool_stdout": 0.3, "answer_before_tool_response": 0.1, "malformed_tool_call": 0.7}
    overrides = [f"astuner.task_judge.bad_case_penalties.{k}={v}" for k, v in penalties.items()]
    conf = REPO / "tutorial" / "example_math_agent" / "math_agent_offline.yaml"
    args = ["--conf", str(conf), "--backbone=debug", "--exp-dir", str(tmp_path), "astuner.experiment_name=rubric"]
    assert main([*args, *overrides]) == 0
    run = tmp_path / "rubric"
    rows = [json.loads(line) for line in (run / "rollouts" / "debug.jsonl").read_text().splitlines()]
    assert len(rows) == 16 and not any(row["error"] for row in rows)
    assert sum(row["reward"] != row["raw_reward"] for row in rows) >= 2  # the penalties applied somewhere
    for row in rows:
        assert row["reward"] == old_reward(row["raw_reward"], row["bad_cases"], row["madness"], configured(penalties), -1.0)
    summary = json.loads((run / "summary.json").read_text())
    terms = {k: v for k, v in summary.items() if k.startswith("reward_term/")}
    assert list(terms) == [f"reward_term/{name}" for name in (*FLAGS, MADNESS_TERM)]
    assert terms["reward_term/empty_tool_stdout"] == pytest.approx(-0.3 * summary["bad_case/empty_tool_stdout"] / 16)
    raw_mean = sum(row["raw_reward"] for row in rows) / len(rows)
    assert sum(terms.values()) == pytest.approx(summary["reward_mean"] - raw_mean, abs=1e-9)
