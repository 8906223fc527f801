"""The engine's vectorised sampler: right distribution, truncation respected, per-row reproducible."""

from __future__ import annotations

import torch

from astuner.engine.sampling import hashed_uniform, sample


def _draw(logits, temperature=1.0, top_p=1.0, top_k=0, n=20000):
    rows = logits.expand(n, -1)
    picks, logprobs = sample(
        rows,
        torch.full((n,), temperature),
        torch.full((n,), top_p),
        torch.full((n,), top_k, dtype=torch.long),
        torch.arange(n, dtype=torch.long),
        torch.zeros(n, dtype=torch.long),
    )
    return picks, logprobs


def test_frequencies_follow_the_tempered_softmax():
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0]])
    for temperature in (1.0, 0.5):
        picks, logprobs = _draw(logits, temperature)
        expected = torch.softmax(logits[0] / temperature, -1)
        freq = torch.bincount(picks, minlength=4).float() / len(picks)
        assert torch.allclose(freq, expected, atol=0.015), (freq, expected)
        assert torch.allclose(logprobs, torch.log(expected)[picks], atol=1e-5)


def test_top_p_and_top_k_never_pick_truncated_tokens_but_report_untruncated_logprobs():
    logits = torch.tensor([[3.0, 2.0, 0.0, -1.0, -2.0]])
    picks, logprobs = _draw(logits, top_p=0.8)
    assert set(picks.tolist()) <= {0, 1}
    assert torch.allclose(logprobs, torch.log_softmax(logits[0], -1)[picks], atol=1e-5)
    picks, _ = _draw(logits, top_k=1, n=500)
    assert set(picks.tolist()) == {0}


def test_greedy_rows_take_the_argmax():
    logits = torch.tensor([[0.1, 0.5, 0.2], [0.9, 0.0, 0.0]])
    picks, _ = sample(logits, torch.zeros(2), torch.ones(2), torch.zeros(2, dtype=torch.long),
                      torch.tensor([1, 2]), torch.zeros(2, dtype=torch.long))
    assert picks.tolist() == [1, 0]


def test_a_seeded_row_draws_the_same_noise_in_any_batch():
    alone = hashed_uniform(torch.tensor([123]), torch.tensor([7]), 50)
    batched = hashed_uniform(torch.tensor([5, 123, 9]), torch.tensor([0, 7, 3]), 50)
    assert torch.equal(alone[0], batched[1])
    assert not torch.equal(batched[0], batched[1])
    u = hashed_uniform(torch.arange(100), torch.zeros(100, dtype=torch.long), 1000)
    assert 0 < u.min() and u.max() < 1 and abs(u.mean().item() - 0.5) < 0.01
