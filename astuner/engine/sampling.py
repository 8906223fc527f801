"""Vectorised, per-request reproducible token sampling for a batch of rows.

Each row has its own seed; the noise for row ``r`` at decode step ``t`` is a pure function of
``(seed_r, t, token id)`` (a SplitMix64 hash computed on the device), so a seeded request draws
the same tokens whatever else shares its batch, and the whole batch samples with a handful of
kernels instead of one random call per row. Sampling is the Gumbel-max trick over the
temperature-scaled logits after top-k / top-p truncation, which draws exactly from the truncated
categorical distribution. The returned logprob is the chosen token's log-probability under the
untruncated ``log_softmax(logits / temperature)`` (``log_softmax(logits)`` for greedy rows).

Not guaranteed: identical streams across devices (float rounding of logits can differ), nor
sampling of tokens whose probability is below about 1e-300 (the hash's resolution).
"""

from __future__ import annotations

import torch

_GOLDEN = 0x9E3779B97F4A7C15
_MIX1 = 0xBF58476D1CE4E5B9
_MIX2 = 0x94D049BB133111EB
_STEP = 0xD1B54A32D192ED03


def _i64(value: int) -> int:
    """An unsigned 64-bit constant as the signed int64 with the same bits."""
    return value - (1 << 64) if value >= 1 << 63 else value


def _shr(x: torch.Tensor, bits: int) -> torch.Tensor:
    """Logical right shift of int64 (torch's ``>>`` is arithmetic)."""
    return (x >> bits) & ((1 << (64 - bits)) - 1)


def hashed_uniform(seeds: torch.Tensor, steps: torch.Tensor, vocab: int) -> torch.Tensor:
    """``[B, V]`` uniforms in (0, 1), a deterministic function of (seed, step, token id)."""
    idx = torch.arange(vocab, device=seeds.device, dtype=torch.int64)
    z = (seeds[:, None] * _i64(_GOLDEN)) + (steps[:, None] * _i64(_STEP)) + idx[None, :] + _i64(_GOLDEN)
    z = (z ^ _shr(z, 30)) * _i64(_MIX1)
    z = (z ^ _shr(z, 27)) * _i64(_MIX2)
    z = z ^ _shr(z, 31)
    return (_shr(z, 11).to(torch.float64) + 0.5) * (2.0**-53)


def truncation_mask(scaled: torch.Tensor, top_k: torch.Tensor, top_p: torch.Tensor) -> torch.Tensor:
    """True where a token survives each row's top-k (<= 0: off) and top-p (1.0: off) truncation."""
    vocab = scaled.shape[-1]
    ordered, order = torch.sort(scaled, dim=-1, descending=True)
    ranks = torch.arange(vocab, device=scaled.device)[None, :]
    k = torch.where(top_k > 0, top_k, torch.full_like(top_k, vocab))[:, None]
    keep = ranks < k
    probs = torch.softmax(ordered.masked_fill(~keep, float("-inf")), dim=-1)
    before = probs.cumsum(dim=-1) - probs
    keep &= before <= top_p[:, None]
    return torch.zeros_like(keep).scatter(1, order, keep)


def sample(
    logits: torch.Tensor,
    temperature: torch.Tensor,
    top_p: torch.Tensor,
    top_k: torch.Tensor,
    seeds: torch.Tensor,
    steps: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One token per row and its logprob; rows with temperature <= 0 are greedy."""
    logits = logits.float()
    greedy = temperature <= 0
    scaled = logits / torch.where(greedy, torch.ones_like(temperature), temperature)[:, None]
    logprobs_all = torch.log_softmax(scaled, dim=-1)
    if bool(((top_p < 1.0) | (top_k > 0)).any()):
        scaled = scaled.masked_fill(~truncation_mask(scaled, top_k, top_p), float("-inf"))
    gumbel = -torch.log(-torch.log(hashed_uniform(seeds, steps, logits.shape[-1])))
    picks = torch.argmax(scaled.double() + gumbel, dim=-1)
    picks = torch.where(greedy, torch.argmax(logits, dim=-1), picks)
    return picks, logprobs_all.gather(1, picks[:, None]).squeeze(1)
