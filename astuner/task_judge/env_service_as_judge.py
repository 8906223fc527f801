"""``EnvServiceJudge``: the environment scores the rollout (``task_reader.type: env_service``).

The judge asks the rollout's env instance for its dense score, ``raw = evaluate({"sparse":
False})``, and turns it into a reward with a bonus for success (upstream's rule):

- success when ``raw >= 1``;
- reward ``1.0 + 0.5 * raw`` on success, else ``0.5 * raw``.

So a fully solved task earns 1.5 and a half-solved one 0.25: partial progress still ranks
rollouts within a GRPO group, and solving stays clearly ahead.

The env handle comes from the judge input's ``env`` (seed style) or ``workflow_task.gym_env``
(new style). Not guaranteed: the score's range is the service's business (a service scoring above
1 earns more than 1.5); the judge does not read ``final_answer``; an unreachable service or a
broken instance raises ``EnvServiceError`` and the rollout fails (it is not scored 0).
"""

from __future__ import annotations

from typing import Any

from astuner.task_judge.base_judge import BaseJudge, JudgeInput, JudgeInputError

EVALUATE_PARAMS = {"sparse": False}


class EnvServiceJudge(BaseJudge):
    """Reward from the environment service's ``evaluate`` of the rollout's instance."""

    def judge(self, judge_input: JudgeInput) -> tuple[float, bool]:
        raw = float(self.env_of(judge_input).evaluate(params=dict(EVALUATE_PARAMS)))
        return env_reward(raw)

    @staticmethod
    def env_of(judge_input: JudgeInput) -> Any:
        env = judge_input.get("env")
        if env is None:
            env = getattr(judge_input.get("workflow_task"), "gym_env", None)
        if env is None:
            raise JudgeInputError(
                "env",
                "EnvServiceJudge needs an environment instance, but this rollout has none: "
                "use it with task_reader.type: env_service",
            )
        return env


def env_reward(raw: float) -> tuple[float, bool]:
    """``(reward, is_success)`` for a dense score ``raw`` (rule in the module docstring)."""
    success = raw >= 1
    return (1.0 + 0.5 * raw if success else 0.5 * raw), success
