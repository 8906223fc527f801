"""One GRPO policy update in one process: samples → per-token logprobs → PPO-clip loss → AdamW.

Old logprobs are the rollout engine's own (the sampling distribution at the rollout temperature;
Trinity's ``bypass_old_logprobs``), so with one mini-batch per step the importance ratio starts at
1 up to numerics. Current logprobs are recomputed as ``log_softmax(logits / T)`` at the same
temperature, but only at trained positions: the language-model head runs on the hidden states
of masked-in tokens alone, which skips the (usually larger) prompt and tool-response part of the
vocabulary projection. Samples are packed into micro-batches of at most ``micro_batch_tokens``
padded tokens; gradients accumulate so the loss equals ``algorithm.ppo_policy_loss`` over the
whole mini-batch (token-mean), whatever the packing.

Not guaranteed: bitwise reproducibility across devices/dtypes; ``seq-mean-token-sum-norm`` is not
supported (its normaliser depends on padding).
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils.checkpoint import checkpoint

from astuner.algorithm import PolicyLossConfig, aggregate, kl_penalty, ppo_policy_loss
from astuner.schema import Sample


@dataclass
class TrainSettings:
    """Optimisation settings, from ``trainer_common`` and ``rollout``."""

    lr: float = 1e-6
    grad_clip: float = 1.0
    temperature: float = 1.0
    loss: PolicyLossConfig = field(default_factory=PolicyLossConfig)
    use_kl_loss: bool = False
    kl_loss_coef: float = 0.0
    kl_loss_type: str = "low_var_kl"
    mini_batch_num: int = 1
    micro_batch_tokens: int = 8192
    weight_decay: float = 0.0


def base_causal_lm(model: Any) -> Any:
    """The transformers CausalLM inside a peft wrapper (LoRA layers are injected in place)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def trained_logprobs(model: Any, batch: list[Sample], device: torch.device, temperature: float) -> list[torch.Tensor]:
    """For each sample, the logprob of every token at positions 1.. where ``loss_mask`` is 1."""
    lm = base_causal_lm(model)
    width = max(len(s.token_ids) for s in batch)
    ids = torch.zeros((len(batch), width), dtype=torch.long, device=device)
    attn = torch.zeros((len(batch), width), dtype=torch.long, device=device)
    for i, s in enumerate(batch):
        ids[i, : len(s.token_ids)] = torch.tensor(s.token_ids, device=device)
        attn[i, : len(s.token_ids)] = 1
    rows, cols, counts = [], [], []
    for i, s in enumerate(batch):
        pos = [t for t in range(1, len(s.token_ids)) if s.loss_mask[t]]
        rows += [i] * len(pos)
        cols += [t - 1 for t in pos]
        counts.append(len(pos))
    r = torch.tensor(rows, device=device)
    c = torch.tensor(cols, device=device)
    targets = ids[r, c + 1]
    inner = getattr(lm, "model", None)
    if inner is None or not hasattr(lm, "lm_head"):
        logits = lm(input_ids=ids, attention_mask=attn).logits[r, c].float()
        picked = _token_logprobs(logits, targets, temperature)
    else:
        hidden = inner(input_ids=ids, attention_mask=attn).last_hidden_state[r, c]
        picked = _chunked_head_logprobs(lm.lm_head, hidden, targets, temperature)
    return list(torch.split(picked, counts))


LOGIT_CHUNK = 2048
"""Positions per vocabulary-projection chunk: bounds the float32 logits held at once."""


def _token_logprobs(logits: torch.Tensor, targets: torch.Tensor, temperature: float) -> torch.Tensor:
    logits = logits.float()
    if temperature > 0:
        logits = logits / temperature
    return logits.gather(-1, targets[:, None]).squeeze(-1) - torch.logsumexp(logits, dim=-1)


def _head_chunk(head: Any, hidden: torch.Tensor, targets: torch.Tensor, temperature: float) -> torch.Tensor:
    return _token_logprobs(head(hidden), targets, temperature)


def _chunked_head_logprobs(head: Any, hidden: torch.Tensor, targets: torch.Tensor, temperature: float) -> torch.Tensor:
    """Logprobs of ``targets`` through the LM head in chunks, recomputing each chunk's logits in the
    backward pass instead of keeping them (a vocabulary of 150k makes logits the memory peak)."""
    parts = []
    for start in range(0, hidden.shape[0], LOGIT_CHUNK):
        h, t = hidden[start : start + LOGIT_CHUNK], targets[start : start + LOGIT_CHUNK]
        if torch.is_grad_enabled():
            parts.append(checkpoint(_head_chunk, head, h, t, temperature, use_reentrant=False))
        else:
            parts.append(_head_chunk(head, h, t, temperature))
    return torch.cat(parts) if parts else hidden.new_zeros(0, dtype=torch.float32)


def pack(samples: list[Sample], max_tokens: int) -> list[list[Sample]]:
    """Greedy packing by length so each micro-batch pads to at most ``max_tokens`` tokens."""
    order = sorted(samples, key=lambda s: len(s.token_ids), reverse=True)
    batches: list[list[Sample]] = []
    for s in order:
        if batches and (len(batches[-1]) + 1) * len(batches[-1][0].token_ids) <= max_tokens:
            batches[-1].append(s)
        else:
            batches.append([s])
    return batches


class PolicyTrainer:
    """Holds the optimizer; ``update(samples)`` runs ``mini_batch_num`` optimizer steps."""

    def __init__(self, model: Any, settings: TrainSettings, device: torch.device, ref_model: Any = None) -> None:
        if settings.loss.loss_agg_mode == "seq-mean-token-sum-norm":
            raise ValueError("loss_agg_mode 'seq-mean-token-sum-norm' is not supported by the local backbone")
        self.model = model
        self.settings = settings
        self.device = device
        self.ref_model = ref_model
        params = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(params, lr=settings.lr, weight_decay=settings.weight_decay)
        self.params = params

    def update(self, samples: list[Sample]) -> dict[str, float]:
        """PPO-clip GRPO update on samples that carry ``advantage``; returns averaged metrics."""
        trainable = [s for s in samples if any(s.loss_mask[1:]) and s.advantage is not None]
        if not trainable:
            return {"train/skipped": 1.0}
        n = max(1, min(self.settings.mini_batch_num, len(trainable)))
        minis = [trainable[i::n] for i in range(n)]
        totals: dict[str, float] = {}
        self.model.train()
        for mini in minis:
            for k, v in self._optimizer_step(mini).items():
                totals[k] = totals.get(k, 0.0) + v / len(minis)
        totals["train/tokens"] = float(sum(sum(s.loss_mask) for s in trainable))
        return totals

    def _optimizer_step(self, mini: list[Sample]) -> dict[str, float]:
        s = self.settings
        mode = s.loss.loss_agg_mode
        total_tokens = sum(sum(x.loss_mask[1:]) for x in mini)
        self.optimizer.zero_grad(set_to_none=True)
        sums: dict[str, float] = {}
        for micro in pack(mini, s.micro_batch_tokens):
            new = trained_logprobs(self.model, micro, self.device, s.temperature)
            old, adv, mask = self._targets(micro, new)
            lp = _pad(new)
            loss, metrics = ppo_policy_loss(lp, old, mask, adv, s.loss)
            if s.use_kl_loss and s.kl_loss_coef > 0:
                ref = _pad(self._ref_logprobs(micro))
                kl = aggregate(kl_penalty(lp, ref, s.kl_loss_type), mask, mode)
                loss = loss + s.kl_loss_coef * kl
                metrics["kl_loss"] = kl.item()
            tokens = float(mask.sum().item())
            weight = tokens / total_tokens if mode == "token-mean" else len(micro) / len(mini)
            (loss * weight).backward()
            for k, v in metrics.items():
                sums[k] = sums.get(k, 0.0) + v * weight
        grad_norm = torch.nn.utils.clip_grad_norm_(self.params, s.grad_clip if s.grad_clip > 0 else math.inf)
        self.optimizer.step()
        sums["grad_norm"] = float(grad_norm)
        return sums

    def _targets(self, micro: list[Sample], new: list[torch.Tensor]):
        olds, advs = [], []
        for sample, lp in zip(micro, new):
            old = [sample.logprobs[t] for t in range(1, len(sample.token_ids)) if sample.loss_mask[t]]
            olds.append(torch.tensor(old, dtype=torch.float32, device=self.device))
            advs.append(torch.full((len(old),), float(sample.advantage), device=self.device))
        old = _pad(olds)
        adv = _pad(advs)
        mask = _pad([torch.ones(len(x), device=self.device) for x in olds])
        return old, adv, mask

    @torch.no_grad()
    def _ref_logprobs(self, micro: list[Sample]) -> list[torch.Tensor]:
        if self.ref_model is not None:
            return trained_logprobs(self.ref_model, micro, self.device, self.settings.temperature)
        ctx = self.model.disable_adapter() if hasattr(self.model, "disable_adapter") else contextlib.nullcontext()
        with ctx:
            return trained_logprobs(self.model, micro, self.device, self.settings.temperature)


def _pad(rows: list[torch.Tensor]) -> torch.Tensor:
    return torch.nn.utils.rnn.pad_sequence(rows, batch_first=True)
