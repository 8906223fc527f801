"""A test engine that replays fixed replies and records exactly what it returned.

It stands in for a model only where a test needs known completions; it tokenizes each reply
with the real tokenizer and gives every token a distinct negative logprob, so tests can check
that the sample carries the engine's ids and logprobs unchanged.
"""

from __future__ import annotations

from astuner.engine.base import Completion, SamplingParams


class ReplayEngine:
    def __init__(self, tokenizer, replies: list[str], end_of_turn_id: int, *, cut: dict[int, int] | None = None):
        self.tokenizer = tokenizer
        self.replies = list(replies)
        self.eot = end_of_turn_id
        self.cut = dict(cut or {})
        self.prompts: list[list[int]] = []
        self.returned: list[Completion] = []

    async def generate(self, prompt_ids, params: SamplingParams, *, context=None) -> Completion:
        i = len(self.prompts)
        self.prompts.append(list(prompt_ids))
        text = self.replies[min(i, len(self.replies) - 1)]
        ids = self.tokenizer.encode(text, add_special_tokens=False) + [self.eot]
        finish = "stop"
        if i in self.cut:
            ids, finish = ids[: self.cut[i]], "length"
        logprobs = [-0.01 * (k + 1) - i for k in range(len(ids))]
        out = Completion(ids, logprobs, finish)
        self.returned.append(out)
        return out

    def close(self) -> None:
        pass
