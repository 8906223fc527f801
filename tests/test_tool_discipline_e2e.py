"""The tool-discipline experiment in miniature on CPU: SFT from a scripted teacher, then GRPO.

This is the CI version of docs/tool_discipline.md (profile ``cpu``: 6 templates, a 64-wide
3-layer model, 1600 teacher traces on problems disjoint from GRPO's and validation's, 1500 SFT
steps, 30 GRPO steps of 8 tasks x 8 rollouts; about 6.5 minutes on 2 cores). Everything is seeded;
batched CPU decoding is not bitwise reproducible across machines, so the assertions are margins
set inside what the run gives. Two runs on the development VM (2 vCPU, 340-390 s): reward
-0.21 -> 0.17/0.18, success 0.06 -> 0.21/0.23, malformed tool calls 0.23 -> 0.03/0.06, empty stdout
0.23 -> 0.04, answers before the tool response 0.09 -> 0.01. The model is too small to copy numbers well, so success stays low and its
margin is the smallest; the claim tested is the issue's: reward rises and every bad case falls.
"""

from __future__ import annotations

import json

from astuner.experiments.tool_discipline.pipeline import run
from astuner.experiments.tool_discipline.profiles import PROFILES
from astuner.task_judge.bad_cases import BAD_CASES

REWARD_GAIN = 0.2
SUCCESS_GAIN = 0.05
BAD_CASE_FACTOR = 2.0
"""Each bad case's validation rate must at least halve ..."""
TOTAL_BAD_CASE_FACTOR = 3.0
"""... and their sum fall at least threefold."""


def test_cpu_miniature_training_raises_reward_and_cuts_every_bad_case(tmp_path, monkeypatch):
    monkeypatch.setenv("AGENTSCOPE_DISABLE_CONSOLE_OUTPUT", "true")
    out = tmp_path / "tool_discipline"
    results = run(PROFILES["cpu"], out)
    before, after = results["before"], results["after"]

    assert results["teacher"]["failed"] == 0
    for name in BAD_CASES:
        assert results["teacher"][f"bad_case/{name}"] > 0.05, f"the teacher must show {name}"
    assert results["steps_trained"] == results["validated_at_step"] == 30 and not results["grpo_stopped_at_deadline"]

    assert after["reward_mean"] >= before["reward_mean"] + REWARD_GAIN, (before, after)
    assert after["success_rate"] >= before["success_rate"] + SUCCESS_GAIN, (before, after)
    for name in BAD_CASES:
        key = f"bad_case/{name}"
        assert before[key] > 0, f"the SFT policy must show {name} before GRPO: {before}"
        assert after[key] * BAD_CASE_FACTOR <= before[key], (name, before, after)
    total_before = sum(before[f"bad_case/{n}"] for n in BAD_CASES)
    total_after = sum(after[f"bad_case/{n}"] for n in BAD_CASES)
    assert total_after * TOTAL_BAD_CASE_FACTOR <= total_before, (before, after)

    for name in ("results.json", "results.md", "curve.png", "tokens_after.png", "grpo/training_curve.png", "sft/model/config.json"):
        assert (out / name).is_file(), name
    saved = json.loads((out / "results.json").read_text())
    assert saved["before"] == before and saved["after"] == after
    assert [c["label"] for c in saved["cases"]][-1] == "after: clean tool use"
