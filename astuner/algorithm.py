"""GRPO advantages and the PPO-clip policy loss of the ``local`` backbone, equal to Trinity-RFT's.

Advantage (docs/architecture.md, contract 4): within a group (one task's ``num_repeat`` rollouts)
each *rollout* — not each sample — gets ``(r - mean) / (std + 1e-6)`` with the unbiased standard
deviation over the group's rollout rewards; a group of one rollout gets mean 0 and std 1. Every
sample of a rollout carries its rollout's advantage, so a rollout split into several samples (a
broken timeline) does not count more in the statistics. This is Trinity-RFT 0.6.0's
``step_wise_grpo`` rule (and equals its ``grpo`` rule when every rollout is one sample); tests check
both against trinity-rft's own functions.

Policy loss: PPO clipped surrogate with dual clipping (``clip_ratio_c``) for negative advantages,
aggregated per ``loss_agg_mode`` (token-mean by default), the same formulas as trinity-rft's
``PPOPolicyLossFn``; optional KL to a reference policy (``low_var_kl``, ``k1``, ``k2``, ``k3``).

Not done here: KL-in-reward, entropy bonus, zero-variance group filtering (all rollouts are
kept; a zero-variance group simply has advantage 0 and contributes no policy gradient).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import torch

from astuner.schema import Sample

EPSILON = 1e-6


def rollout_advantages(rewards: dict[str, float], groups: dict[str, str], epsilon: float = EPSILON) -> dict[str, float]:
    """``{rollout_id: advantage}`` from ``{rollout_id: reward}`` and ``{rollout_id: group_id}``."""
    members: dict[str, list[str]] = defaultdict(list)
    for rid, gid in groups.items():
        members[gid].append(rid)
    out: dict[str, float] = {}
    for rids in members.values():
        scores = torch.tensor([rewards[r] for r in rids], dtype=torch.float32)
        if len(rids) == 1:
            mean, std = torch.tensor(0.0), torch.tensor(1.0)
        else:
            mean, std = scores.mean(), scores.std()
        for rid, score in zip(rids, scores):
            out[rid] = float((score - mean) / (std + epsilon))
    return out


def assign_advantages(samples: list[Sample], epsilon: float = EPSILON) -> dict[str, float]:
    """Set ``sample.advantage`` for every sample (in place); returns the per-rollout advantages."""
    rewards = {s.rollout_id: s.reward for s in samples}
    groups = {s.rollout_id: s.group_id for s in samples}
    adv = rollout_advantages(rewards, groups, epsilon)
    for s in samples:
        s.advantage = adv[s.rollout_id]
    return adv


def masked_mean(values: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    mask = mask.to(values.dtype)
    if dim is None:
        return (values * mask).sum() / (mask.sum() + 1e-8)
    return (values * mask).sum(dim) / (mask.sum(dim) + 1e-8)


def aggregate(values: torch.Tensor, mask: torch.Tensor, mode: str = "token-mean") -> torch.Tensor:
    """Reduce a ``[B, T]`` loss to a scalar the way trinity-rft/verl name it."""
    if mode == "token-mean":
        return masked_mean(values, mask)
    if mode == "seq-mean-token-sum":
        return (values * mask).sum(-1).mean()
    if mode == "seq-mean-token-mean":
        return masked_mean(values, mask, dim=-1).mean()
    if mode == "seq-mean-token-sum-norm":
        return (values * mask).sum() / (mask.shape[-1] + 1e-8)
    raise ValueError(f"unknown loss_agg_mode {mode!r}")


@dataclass
class PolicyLossConfig:
    """PPO-clip settings; defaults are trinity-rft's ``PPOPolicyLossFn.default_args()``."""

    clip_range_low: float = 0.2
    clip_range_high: float = 0.2
    clip_ratio_c: float = 3.0
    loss_agg_mode: str = "token-mean"


def ppo_policy_loss(
    logprob: torch.Tensor,
    old_logprob: torch.Tensor,
    mask: torch.Tensor,
    advantages: torch.Tensor,
    cfg: PolicyLossConfig = PolicyLossConfig(),
) -> tuple[torch.Tensor, dict[str, float]]:
    """Clipped surrogate loss over ``[B, T]`` tensors; ``mask`` is 1 on trained tokens."""
    mask = mask.to(logprob.dtype)
    log_ratio = torch.clamp(logprob - old_logprob, -20.0, 20.0)
    ratio = torch.exp(log_ratio)
    loss1 = -advantages * ratio
    loss2 = -advantages * torch.clamp(ratio, 1.0 - cfg.clip_range_low, 1.0 + cfg.clip_range_high)
    clipped = torch.maximum(loss1, loss2)
    loss3 = -advantages * cfg.clip_ratio_c
    dual = torch.minimum(loss3, clipped)
    losses = torch.where(advantages < 0, dual, clipped)
    loss = aggregate(losses, mask, cfg.loss_agg_mode)
    metrics = {
        "pg_loss": loss.detach().item(),
        "pg_clipfrac": masked_mean(torch.gt(loss2, loss1).to(mask.dtype), mask).item(),
        "pg_clipfrac_lower": masked_mean((torch.gt(clipped, loss3) & (advantages < 0)).to(mask.dtype), mask).item(),
        "ppo_kl": masked_mean(-log_ratio, mask).detach().item(),
    }
    return loss, metrics


def kl_penalty(logprob: torch.Tensor, ref_logprob: torch.Tensor, kind: str = "low_var_kl") -> torch.Tensor:
    """Per-token KL estimate to the reference policy (trinity-rft's KL functions)."""
    if kind == "k1":
        return logprob - ref_logprob
    if kind == "k2":
        return (logprob - ref_logprob).square() * 0.5
    if kind == "k3":
        logr = ref_logprob - logprob
        return logr.exp() - 1 - logr
    if kind == "low_var_kl":
        kl = torch.clamp(ref_logprob - logprob, -20.0, 20.0)
        return torch.clamp(torch.exp(kl) - kl - 1, -10.0, 10.0)
    raise ValueError(f"unknown kl_loss_type {kind!r} (choose from k1, k2, k3, low_var_kl)")
