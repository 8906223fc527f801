"""``summarize``: a failed rollout counts as a failure in the success rate; means stay over finished ones."""

from __future__ import annotations

import pytest

from astuner.rollout import RolloutResult, summarize


def rollout(i: int, *, success: bool = True, reward: float = 1.0, error: str | None = None) -> RolloutResult:
    r = RolloutResult(task_id=str(i), repeat_index=0, rollout_id=f"{i}-0", error=error)
    if error is None:
        r.is_success, r.reward, r.num_tool_calls = success, reward, 2
        r.bad_cases = {"empty_tool_stdout": not success}
    return r


def test_a_crash_lowers_the_success_rate_and_is_counted():
    results = [rollout(i) for i in range(15)] + [rollout(15, error="RecursionError: deep")]
    s = summarize(results)
    assert (s["rollouts"], s["finished_rollouts"], s["failed_rollouts"], s["successes"]) == (16, 15, 1, 15)
    assert s["success_rate"] == pytest.approx(15 / 16)  # not 1.000: the crashed rollout is a failure
    assert s["reward_mean"] == 1.0  # over finished rollouts: a crash has no reward
    assert s["tool_calls_per_rollout"] == 2.0


def test_denominators_of_every_rate():
    results = [rollout(0), rollout(1, success=False, reward=0.0), rollout(2, error="x"), rollout(3, error="y")]
    s = summarize(results)
    assert s["success_rate"] == 0.25 and s["successes"] == 1
    assert s["reward_mean"] == 0.5
    assert s["bad_case/empty_tool_stdout"] == 1  # a count, over finished rollouts


def test_all_failed_and_empty():
    s = summarize([rollout(0, error="boom")])
    assert (s["success_rate"], s["reward_mean"], s["finished_rollouts"]) == (0.0, 0.0, 0)
    s = summarize([])
    assert (s["rollouts"], s["success_rate"], s["reward_mean"]) == (0, 0.0, 0.0)
