"""An astuner ``Engine`` backed by Trinity's rollout model (its ``ModelWrapper``).

Token-exactness decides the route. Trinity 0.6.0's ``ModelWrapper.generate_async`` takes prompt
*strings* (the vLLM actor re-tokenizes them) and ``chat_async`` takes messages (the actor applies
the chat template) — both would re-tokenize. A token-id prompt dict does reach vLLM through
``generate_async``, but only by the multimodal branch of ``vLLMRolloutModel.generate``, which
expects a tokenizer that a fresh actor has not loaded. So this engine uses the vLLM OpenAI server
that Trinity starts inside each rollout actor (``explorer.rollout_model.enable_openai_api: true``,
address from ``ModelWrapper.api_address`` after ``prepare()``): ``POST /v1/completions`` with the
prompt given as token ids and vLLM's ``return_token_ids`` extension, exactly as astuner's
``openai`` engine does (``astuner.engine.openai_engine``). The ids sent are the ids vLLM sees; the
ids and logprobs returned are vLLM's own. Trinity starts vLLM with
``logprobs_mode="processed_logprobs"``, so the logprobs are those of the distribution actually
sampled (temperature and top-p applied), the convention Trinity's trainer expects.

The model name sent is the wrapper's ``model_path`` (what Trinity's server serves); the API key is
the wrapper's (``explorer.rollout_model.api_key``, default ``EMPTY``).

Not guaranteed: LoRA adapters (requests name the base model); engines other than vLLM (SGLang's
server has no ``return_token_ids``; this fails with ``EngineError`` rather than re-tokenizing).
"""

from __future__ import annotations

import asyncio
from typing import Any

from astuner.engine.base import Completion, EngineError, SamplingParams
from astuner.engine.openai_engine import OpenAIEngine


class TrinityEngine:
    """Completes token-id prompts on the vLLM server behind a Trinity ``ModelWrapper``."""

    def __init__(self, model: Any, timeout_s: float = 1800.0) -> None:
        self.model = model
        self.timeout_s = timeout_s
        self._engine: OpenAIEngine | None = None
        self._lock = asyncio.Lock()

    async def _server(self) -> OpenAIEngine:
        if self._engine is not None:
            return self._engine
        async with self._lock:
            if self._engine is None:
                address = getattr(self.model, "api_address", None)
                if not address:
                    await self.model.prepare()
                    address = getattr(self.model, "api_address", None)
                if not address:
                    raise EngineError(
                        "Trinity's rollout model has no OpenAI API server; astuner needs "
                        "explorer.rollout_model.enable_openai_api: true (the trinity: block must not turn it off)"
                    )
                engine = OpenAIEngine(f"{str(address).rstrip('/')}/v1", str(self.model.model_path), timeout_s=self.timeout_s)
                engine._api_key = str(getattr(self.model, "api_key", None) or "EMPTY")
                self._engine = engine
        return self._engine

    async def generate(self, prompt_ids: list[int], params: SamplingParams, *, context: dict | None = None) -> Completion:
        engine = await self._server()
        return await engine.generate(prompt_ids, params, context=context)

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()
