"""The inference-engine contract: token ids in, token ids and logprobs out.

An engine never sees messages or text templates; the model tuner (``astuner.model_tuner``) renders
prompts to token ids and parses completions. This keeps samples token-exact (docs/architecture.md,
contract 2): the ids an engine returns are stored and trained on as they are.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol


class EngineError(RuntimeError):
    """An engine could not complete a call: unreachable server, bad reply, missing script entry.

    The message is one line that names what failed (URL, file and line, task id).
    """


@dataclass
class SamplingParams:
    """How to sample one completion."""

    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = -1
    stop_token_ids: list[int] = field(default_factory=list)
    seed: int | None = None


@dataclass
class Completion:
    """What an engine returns for one prompt.

    ``token_ids`` include the stop token when generation ended on one (``finish_reason ==
    "stop"``); ``logprobs[i]`` is the log-probability of ``token_ids[i]`` under the sampling
    distribution (temperature applied; for temperature 0 the unscaled distribution).
    ``finish_reason`` is ``"stop"`` or ``"length"``.
    """

    token_ids: list[int]
    logprobs: list[float]
    finish_reason: str

    def __post_init__(self) -> None:
        if len(self.token_ids) != len(self.logprobs):
            raise ValueError(
                f"engine returned {len(self.token_ids)} tokens but {len(self.logprobs)} logprobs"
            )
        if self.finish_reason not in ("stop", "length"):
            raise ValueError(f"finish_reason must be 'stop' or 'length', got {self.finish_reason!r}")


class Engine(Protocol):
    """Anything that completes token-id prompts. Safe to call concurrently from one event loop."""

    async def generate(self, prompt_ids: list[int], params: SamplingParams, *, context: dict | None = None) -> Completion:
        """Complete one prompt. ``context`` carries hints such as the rollout's task (scripted engine)."""
        ...

    def close(self) -> None:
        """Release threads, sockets and memory. Idempotent."""
        ...


class PolicyEngine(Engine, Protocol):
    """An engine that generates with the policy being trained (the local backbone's engines).

    The trainer calls ``updating()`` around each policy update and ``publish`` after it, and never
    asks which engine it has: the in-process transformers engine holds its decode lock during the
    update (it shares the model object) and has nothing to publish; the vLLM engine frees the GPU
    for the update (sleep or stop) and loads the new weights into its server afterwards.
    """

    def updating(self) -> AbstractContextManager[None]:
        """Held while the trainer changes the weights; generation must not run inside it."""
        ...

    def publish(self, model: Any, tokenizer: Any, name: str) -> float | None:
        """Serve ``model``'s updated weights (``name`` labels the version); the seconds it took, or
        None when the engine already generates with ``model`` itself."""
        ...
