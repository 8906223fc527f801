"""GRPO advantages and the policy update's arithmetic (trinity-rft equality lives in test_trinity_*)."""

from __future__ import annotations

import copy

import pytest
import torch

from astuner.algorithm import PolicyLossConfig, assign_advantages, ppo_policy_loss, rollout_advantages
from astuner.backbone.policy_trainer import PolicyTrainer, TrainSettings, pack
from astuner.schema import Sample


def test_advantage_is_per_rollout_not_per_sample():
    # rollout a0 split into three samples must not weigh more than a1
    rewards = {"a0": 1.0, "a1": 0.0, "b0": 0.5}
    groups = {"a0": "A", "a1": "A", "b0": "B"}
    adv = rollout_advantages(rewards, groups)
    # mean 0.5, unbiased std sqrt(0.5): advantages ±0.5/0.7071 = ±0.7071
    assert adv["a0"] == pytest.approx(0.5 / 0.5**0.5, rel=1e-5)
    assert adv["a0"] == pytest.approx(-adv["a1"])
    assert adv["b0"] == pytest.approx(0.5)  # a group of one: mean 0, std 1
    samples = [Sample([1, 2], [0, 1], [0.0, -1.0], r, g, rid) for rid, r, g in
               [("a0", 1.0, "A"), ("a0", 1.0, "A"), ("a0", 1.0, "A"), ("a1", 0.0, "A")]]
    assign_advantages(samples)
    assert [s.advantage for s in samples[:3]] == [adv["a0"]] * 3


def test_zero_variance_group_has_zero_advantage():
    adv = rollout_advantages({"x": 1.0, "y": 1.0}, {"x": "g", "y": "g"})
    assert adv == {"x": 0.0, "y": 0.0}


def test_ppo_loss_is_minus_mean_advantage_on_policy():
    lp = torch.randn(3, 5)
    adv = torch.randn(3, 1).expand(3, 5)
    mask = torch.ones(3, 5)
    loss, metrics = ppo_policy_loss(lp, lp.clone(), mask, adv)
    assert loss.item() == pytest.approx(-adv.mean().item(), abs=1e-6)
    assert metrics["pg_clipfrac"] == 0.0 and metrics["ppo_kl"] == pytest.approx(0.0)


def _tiny_model():
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    cfg = Qwen2Config(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128)
    return Qwen2ForCausalLM(cfg)


def _samples(n: int = 6) -> list[Sample]:
    g = torch.Generator().manual_seed(1)
    out = []
    for i in range(n):
        length = 8 + 3 * i
        ids = torch.randint(0, 64, (length,), generator=g).tolist()
        mask = [0] * 4 + [1] * (length - 4)
        lps = [0.0] * 4 + (-torch.rand(length - 4, generator=g)).tolist()
        s = Sample(ids, mask, lps, float(i % 2), f"g{i // 2}", f"r{i}")
        out.append(s)
    assign_advantages(out)
    return out


@pytest.mark.parametrize("mode", ["token-mean", "seq-mean-token-mean"])
def test_micro_batching_does_not_change_the_gradient(mode):
    grads = []
    for budget in (10_000, 20):
        model = _tiny_model()
        settings = TrainSettings(lr=0.0, grad_clip=0.0, loss=PolicyLossConfig(loss_agg_mode=mode), micro_batch_tokens=budget)
        trainer = PolicyTrainer(model, settings, torch.device("cpu"))
        trainer.update(copy.deepcopy(_samples()))
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]))
    assert len(pack(_samples(), 20)) > 1
    assert torch.allclose(grads[0], grads[1], atol=1e-6, rtol=1e-4)


def test_update_moves_weights_toward_higher_advantage_tokens():
    model = _tiny_model()
    before = [p.detach().clone() for p in model.parameters()]
    trainer = PolicyTrainer(model, TrainSettings(lr=1e-2), torch.device("cpu"))
    metrics = trainer.update(_samples())
    assert metrics["grad_norm"] > 0 and metrics["train/tokens"] > 0
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
