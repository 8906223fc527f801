"""Supervised fine-tuning on rollout samples, trained where their loss masks say.

Why the samples' own masks: they mark exactly the tokens the policy generated (the teacher's
replies and their end-of-turn tokens), never the system prompt, the question, the tool responses
or the template's headers. Training there makes the cold-start model imitate the teacher's turns
while conditioning on everything else, and it is the same token layout GRPO will train on.

The loss is the token-mean negative log-likelihood over mask=1 tokens of a batch (the policy's
logprobs at temperature 1, as the local backbone's ``trained_logprobs`` computes them; a test
checks that they agree). AdamW with linear warm-up and cosine decay per phase; bf16 autocast on
CUDA; ``max_seconds`` caps each phase's wall-clock time (not guaranteed: a capped phase ends
mid-schedule, its learning rate not decayed; the result flags it ``stopped_early``).

Two phases, because a model trained from scratch must learn to *copy* numbers (from the question
into the code, from the tool's stdout into the answer), and attention finds them slowly when ~340
of ~470 tokens are the same system prompt and tool schemas: measured on CPU with a 64-wide
3-layer model, 1200 steps on the full samples left digits at ~2 nats each, while 1200 steps on
the samples with their shared prefix cut off brought them to ~0.05. So phase 1 (``short_steps``)
trains on the samples after the prefix every sample shares, and phase 2 (``steps``) on the whole
samples, which the policy will see.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from astuner.backbone.policy_trainer import base_causal_lm
from astuner.engine.transformers_engine import cache_kwarg
from astuner.schema import Sample


@dataclass(frozen=True)
class SFTSettings:
    steps: int = 300
    """Phase 2: steps on the whole samples."""
    short_steps: int = 0
    """Phase 1: steps on the samples without the prefix they all share (0 = no phase 1)."""
    batch_size: int = 32
    lr: float = 2e-3
    warmup_fraction: float = 0.05
    min_lr_fraction: float = 0.1
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    seed: int = 0
    max_seconds: float = 0.0
    """Stop a phase after this many seconds of training (0 = no limit)."""


def shared_prefix(batch: Sequence[Sample]) -> int:
    """How many leading tokens every sample of the batch shares, stopping before the first trained
    token's predecessor (so every trained token is predicted from the per-sample part)."""
    first = batch[0].token_ids
    limit = min(min(len(s.token_ids) for s in batch), min(s.loss_mask.index(1) for s in batch)) - 1
    n = 0
    while n < limit and all(s.token_ids[n] == first[n] for s in batch):
        n += 1
    return max(n, 0)


def sft_loss(model: Any, batch: Sequence[Sample], device: torch.device) -> torch.Tensor:
    """Token-mean negative log-likelihood of the batch's mask=1 tokens (logprobs at temperature 1).

    Two exact shortcuts, because most of every sample is the same system prompt with its tool
    schemas (about 340 of 470 tokens with either profile's tokenizer): the shared prefix runs once, and its key/value cache
    (with gradients) is repeated for the batch; the rest is right-padded and runs without a padding
    mask, since under causal attention no real token sees the padding after it.
    """
    width = max(len(s.token_ids) for s in batch)
    ids = torch.zeros((len(batch), width), dtype=torch.long)
    weights = torch.zeros((len(batch), width), dtype=torch.float32)
    for i, s in enumerate(batch):
        ids[i, : len(s.token_ids)] = torch.tensor(s.token_ids)
        weights[i, : len(s.loss_mask)] = torch.tensor(s.loss_mask, dtype=torch.float32)
    ids, weights = ids.to(device), weights.to(device)
    body = base_causal_lm(model)
    prefix = shared_prefix(batch)
    extra: dict[str, Any] = {}
    if prefix:
        out = body.model(input_ids=ids[:1, :prefix], use_cache=True)
        cache = getattr(out, "cache", None)
        cache = out.past_key_values if cache is None else cache
        cache.batch_repeat_interleave(len(batch))
        positions = torch.arange(prefix, width, device=device)[None].expand(len(batch), -1)
        extra = {cache_kwarg(body): cache, "position_ids": positions}
    hidden = body.model(input_ids=ids[:, prefix:], use_cache=False, **extra).last_hidden_state
    logits = body.lm_head(hidden[:, :-1]).float()
    nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), ids[:, prefix + 1 :], reduction="none")
    mask = weights[:, prefix + 1 :]
    return (nll * mask).sum() / mask.sum()


def learning_rate(step: int, steps: int, settings: SFTSettings) -> float:
    """Linear warm-up to ``lr``, then cosine decay to ``lr * min_lr_fraction`` at ``steps``."""
    warmup = max(1, int(steps * settings.warmup_fraction))
    if step < warmup:
        return settings.lr * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, steps - warmup))
    floor = settings.min_lr_fraction
    return settings.lr * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))


def without_prefix(sample: Sample, cut: int) -> Sample:
    """The sample from token ``cut`` on (its trained tokens all lie after ``cut``)."""
    return replace(sample, token_ids=sample.token_ids[cut:], loss_mask=sample.loss_mask[cut:],
                   logprobs=sample.logprobs[cut:], prompt_length=max(0, sample.prompt_length - cut))


def train(model: Any, samples: Sequence[Sample], settings: SFTSettings, device: torch.device, log_every: int = 50) -> dict[str, Any]:
    """Train ``model`` in place, phase 1 then phase 2; returns each phase's loss curve (mean loss
    every ``log_every`` steps), steps and seconds."""
    if settings.steps < 1 or settings.short_steps < 0:
        raise ValueError(f"SFT needs steps >= 1 and short_steps >= 0, got {settings}")
    trainable = [s for s in samples if any(s.loss_mask[1:])]
    if not trainable:
        raise ValueError("no sample has a trained token")
    torch.manual_seed(settings.seed)
    result: dict[str, Any] = {}
    if settings.short_steps:
        cut = shared_prefix(trainable)
        short = [without_prefix(s, cut) for s in trainable]
        result["short"] = {"cut_tokens": cut, **_phase(model, short, settings.short_steps, settings, device, log_every)}
    result["full"] = _phase(model, trainable, settings.steps, settings, device, log_every)
    result["seconds"] = sum(p["seconds"] for p in (result.get("short"), result["full"]) if p)
    result["final_loss"] = result["full"]["final_loss"]
    return result


def _phase(model: Any, samples: list[Sample], steps: int, settings: SFTSettings, device: torch.device, log_every: int) -> dict[str, Any]:
    """One phase: fresh AdamW, its own warm-up and cosine schedule, shuffled epochs."""
    rng = random.Random(f"{settings.seed}:{steps}:{len(samples[0].token_ids)}")
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu", enabled=False)
    model.train()
    order: list[Sample] = []
    curve: list[tuple[int, float]] = []
    window: list[float] = []
    started = time.perf_counter()
    done = 0
    for step in range(steps):
        if settings.max_seconds and time.perf_counter() - started > settings.max_seconds:
            break
        if len(order) < settings.batch_size:
            order = list(samples)
            rng.shuffle(order)
        batch, order = order[: settings.batch_size], order[settings.batch_size :]
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, steps, settings)
        with autocast:
            loss = sft_loss(model, batch, device)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
        optimizer.step()
        window.append(loss.item())
        if (step + 1) % log_every == 0 or step + 1 == steps:
            curve.append((step + 1, sum(window) / len(window)))
            window = []
        done = step + 1
    if window:
        curve.append((done, sum(window) / len(window)))
    model.eval()
    return {"steps": done, "loss_curve": curve, "seconds": time.perf_counter() - started,
            "final_loss": curve[-1][1], "stopped_early": done < steps}


def save(model: Any, tokenizer: Any, out_dir: str | Path) -> Path:
    """Write a loadable Hugging Face directory (model in float32, tokenizer, generation config)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.to(torch.float32).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
