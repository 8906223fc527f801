"""Call records → training samples, with loss masks and logprobs checked where they are built.

Merging is by token ids, not text: a call whose ``prompt_ids + completion_ids`` is an exact prefix
of a later call's ``prompt_ids`` belongs to the same sample as that later call. The sample's
``token_ids`` are the last call's prompt + completion; ``loss_mask`` is 1 exactly on the positions
of each merged call's completion (the generated tokens, including a generated end-of-turn token) and
0 everywhere else (system, user, tool responses, the template's headers and trailing text, an
end-of-turn token the template added after a length-cut reply). ``logprobs`` are the engine's on
those positions and 0 elsewhere (docs/architecture.md, contract 3).

Truncation follows upstream: a sample whose generated part (from the first trained token on) is
longer than ``max_response_length`` is cut there and marked ``truncated``. When a rollout yields
more than ``max_sample_per_task`` samples, a seeded random subset is kept and the rest counted as
dropped. Context-overflow calls never reach here: the engine was not called for them.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from astuner.schema import CallRecord, Sample


@dataclass
class SampleStats:
    """What building one rollout's samples did, for metrics."""

    calls: int = 0
    samples: int = 0
    dropped_samples: int = 0
    truncated_samples: int = 0
    generated_tokens: int = 0


class SampleInvariantError(AssertionError):
    """A built sample broke contract 3 of docs/architecture.md: a bug in astuner, never a model error."""


def merge_calls(calls: list[CallRecord]) -> list[list[CallRecord]]:
    """Group calls into chains where each call's full sequence prefixes the next call's prompt."""
    chains: list[list[CallRecord]] = []
    for call in calls:
        for chain in chains:
            last = chain[-1]
            full = last.prompt_ids + last.completion_ids
            if len(call.prompt_ids) >= len(full) and call.prompt_ids[: len(full)] == full:
                chain.append(call)
                break
        else:
            chains.append([call])
    return chains


def chain_to_arrays(chain: list[CallRecord]) -> tuple[list[int], list[int], list[float]]:
    """token_ids, loss_mask and logprobs of one merged chain, with the invariants asserted."""
    last = chain[-1]
    token_ids = last.prompt_ids + last.completion_ids
    loss_mask = [0] * len(token_ids)
    logprobs = [0.0] * len(token_ids)
    for call in chain:
        start = len(call.prompt_ids)
        end = start + len(call.completion_ids)
        if token_ids[start:end] != call.completion_ids:
            raise SampleInvariantError("merged call's completion is not where its prompt ends")
        for i in range(start, end):
            loss_mask[i] = 1
        logprobs[start:end] = [float(x) for x in call.logprobs]
    return token_ids, loss_mask, logprobs


def build_samples(
    calls: list[CallRecord],
    *,
    reward: float,
    group_id: str,
    rollout_id: str,
    max_sample_per_task: int,
    max_response_length: int,
    seed: int = 0,
) -> tuple[list[Sample], SampleStats]:
    """Merge a rollout's calls into samples; every sample carries the rollout's reward."""
    stats = SampleStats(calls=len(calls))
    chains = [c for c in merge_calls(calls) if any(len(x.completion_ids) for x in c)]
    if len(chains) > max_sample_per_task:
        keep = sorted(random.Random(f"{seed}:{rollout_id}").sample(range(len(chains)), max_sample_per_task))
        stats.dropped_samples = len(chains) - max_sample_per_task
        chains = [chains[i] for i in keep]
    samples = []
    for chain in chains:
        token_ids, loss_mask, logprobs = chain_to_arrays(chain)
        prompt_length = loss_mask.index(1)
        truncated = False
        if len(token_ids) - prompt_length > max_response_length:
            cut = prompt_length + max_response_length
            token_ids, loss_mask, logprobs = token_ids[:cut], loss_mask[:cut], logprobs[:cut]
            truncated = True
            stats.truncated_samples += 1
        stats.generated_tokens += sum(loss_mask)
        samples.append(
            Sample(
                token_ids=token_ids,
                loss_mask=loss_mask,
                logprobs=logprobs,
                reward=reward,
                group_id=group_id,
                rollout_id=rollout_id,
                prompt_length=prompt_length,
                truncated=truncated,
            )
        )
    stats.samples = len(samples)
    return samples, stats
