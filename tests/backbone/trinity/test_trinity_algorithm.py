"""astuner's GRPO advantage, PPO-clip loss and KL estimators equal trinity-rft 0.6.0's own.

This is contract 4 of docs/architecture.md (one advantage rule for every backbone).

The advantages are computed by Trinity's ``step_wise_grpo`` (``multi_step_grpo``) and ``grpo``
functions on Experiences that astuner's workflow produced through Trinity's real WorkflowRunner
(see test_trinity_backbone.py for what is stubbed) and on Experiences built from multi-sample
rollouts; they must equal ``astuner.algorithm.rollout_advantages`` to 1e-6. Skipped, saying so,
when trinity-rft is not installed.
"""

from __future__ import annotations

import copy

import pytest
import torch

from astuner.algorithm import PolicyLossConfig, kl_penalty, ppo_policy_loss, rollout_advantages
from tests.backbone.trinity.fixtures import require_trinity, run_tasks

pytestmark = pytest.mark.integration


def _astuner_advantages(exps) -> dict:
    """astuner's per-rollout advantages for Trinity experiences (group = eid.tid, rollout = eid.rid)."""
    rewards = {e.eid.rid: float(e.reward) for e in exps}
    groups = {e.eid.rid: e.eid.tid for e in exps}
    return rollout_advantages(rewards, groups)


def _trinity(name: str, exps):
    from trinity.algorithm import ADVANTAGE_FN

    cls = ADVANTAGE_FN.get(name)
    out, _ = cls(**cls.default_args())(copy.deepcopy(exps))
    return out


def _assert_equal(out, expected):
    assert out, "no experiences came back"
    for e in out:
        mask = e.action_mask.bool()
        assert torch.allclose(e.advantages[mask], torch.full_like(e.advantages[mask], expected[e.eid.rid]), atol=1e-6)
        assert (e.advantages[~mask] == 0).all()


def test_advantages_of_runner_experiences_equal_astuners(tmp_path):
    require_trinity()

    exps, _, _ = run_tasks(tmp_path, num_repeat=4)
    assert all(e.eid.step == 0 for e in exps), "one sample per rollout here"
    expected = _astuner_advantages(exps)
    assert len({round(v, 4) for v in expected.values()}) > 1, "rewards must differ within groups"
    _assert_equal(_trinity("step_wise_grpo", exps), expected)  # multi_step_grpo, astuner's default
    _assert_equal(_trinity("grpo", exps), expected)  # equal when every rollout is one sample


def _multi_sample_experiences():
    """Rollouts split into several samples (broken timelines), as ``experiences_from_rollout`` emits them."""
    from astuner.backbone.trinity.workflow import experiences_from_rollout
    from astuner.rollout import RolloutResult
    from astuner.schema import Sample

    exps = []
    plan = {"a": [(1.0, 3), (0.0, 1), (1.0, 2), (0.0, 4)], "b": [(0.5, 2), (0.25, 1), (1.0, 1)], "c": [(1.0, 2)]}
    for task_index, (task, runs) in enumerate(plan.items()):
        for run, (reward, n_samples) in enumerate(runs):
            samples = [
                Sample([1, 2, 3, 4, 5], [0, 0, 1, 1, 0], [0.0, 0.0, -0.1, -0.2, 0.0], reward=reward,
                       group_id=task, rollout_id=f"T{task}#R{run}", prompt_length=2)
                for _ in range(n_samples)
            ]
            result = RolloutResult(task_id=task, repeat_index=run, rollout_id=f"T{task}#R{run}", reward=reward,
                                   samples=samples)
            for e in experiences_from_rollout(result, run):
                e.eid.batch, e.eid.task = 0, task_index
                exps.append(e)
    return exps


def test_step_wise_grpo_weights_rollouts_not_samples():
    require_trinity()
    exps = _multi_sample_experiences()
    expected = _astuner_advantages(exps)
    _assert_equal(_trinity("step_wise_grpo", exps), expected)
    # plain grpo averages over samples, so a rollout split into 3 samples counts 3 times: it differs
    out = _trinity("grpo", exps)
    assert any(abs(e.advantages[e.action_mask.bool()][0].item() - expected[e.eid.rid]) > 1e-3 for e in out)


@pytest.mark.parametrize("mode", ["token-mean", "seq-mean-token-sum", "seq-mean-token-mean", "seq-mean-token-sum-norm"])
@pytest.mark.parametrize("clip", [(0.2, 0.2, 3.0), (0.1, 0.28, 2.0)])
def test_ppo_policy_loss_equals_trinitys(mode, clip):
    require_trinity()
    from trinity.algorithm import POLICY_LOSS_FN

    gen = torch.Generator().manual_seed(7)
    shape = (6, 11)
    logprob = -torch.rand(shape, generator=gen) * 3
    old = logprob + (torch.rand(shape, generator=gen) - 0.5) * 0.8
    mask = (torch.rand(shape, generator=gen) > 0.3).float()
    adv = torch.randn(shape, generator=gen)
    low, high, c = clip
    cls = POLICY_LOSS_FN.get("ppo")
    args = {**cls.default_args(), "clip_range_low": low, "clip_range_high": high, "clip_ratio_c": c, "loss_agg_mode": mode}
    theirs, their_metrics = cls(**args)(logprob=logprob, old_logprob=old, action_mask=mask, advantages=adv)
    ours, our_metrics = ppo_policy_loss(logprob, old, mask, adv, PolicyLossConfig(low, high, c, mode))
    assert ours.item() == pytest.approx(theirs.item(), abs=1e-6)
    for key in ("pg_clipfrac", "pg_clipfrac_lower", "ppo_kl", "pg_loss"):
        assert our_metrics[key] == pytest.approx(their_metrics[key], abs=1e-6), key


@pytest.mark.parametrize("kind", ["k1", "k2", "k3", "low_var_kl"])
def test_kl_penalty_equals_trinitys_kl_functions(kind):
    require_trinity()
    from trinity.algorithm import KL_FN

    gen = torch.Generator().manual_seed(3)
    logprob = -torch.rand(5, 9, generator=gen) * 4
    ref = -torch.rand(5, 9, generator=gen) * 4
    cls = KL_FN.get(kind)
    theirs = cls(**cls.default_args()).calculate_kl(logprob, ref)
    assert torch.allclose(kl_penalty(logprob, ref, kind), theirs, atol=1e-6)
