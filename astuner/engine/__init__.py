"""Inference engines (token ids in, token ids and logprobs out) and ``build_engine``.

Engine modules are imported only when built, so ``import astuner.engine`` stays light
(no torch import, no HTTP client until needed).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from astuner.engine.base import Completion, Engine, EngineError, SamplingParams

if TYPE_CHECKING:
    from astuner.config.schema_rollout import EngineConfig

ENGINE_TYPES = ("transformers", "vllm", "openai", "scripted")

__all__ = ["ENGINE_TYPES", "Completion", "Engine", "EngineError", "SamplingParams", "build_engine"]


def build_engine(
    engine_cfg: EngineConfig,
    model_path: str,
    tokenizer: Any,
    end_of_turn_id: int,
    seed: int = 0,
    *,
    log_dir: str | Path | None = None,
    max_model_len: int | None = None,
) -> Engine:
    """Build the engine named by ``engine_cfg.type`` (the ``astuner.rollout.engine`` block).

    Each type reads its own sub-block: ``transformers`` (``device``, ``dtype``,
    ``max_batch_size``, ``cuda_graphs``), ``vllm`` (see
    ``astuner.engine.vllm_engine.build_vllm_engine``; the server's log goes to ``log_dir`` and
    ``max_model_len`` becomes ``--max-model-len``), ``openai`` (``base_url``, ``model_name`` —
    empty means ``model_path`` —, ``api_key_env``, ``timeout_s``) and ``scripted`` (``path``).
    Raises ``ValueError`` for an unknown type or a missing required key, ``EngineError`` when a
    vLLM server cannot be started (nothing is left running then). The tokenizer is shared with
    the transformers engine, not reloaded.
    """
    kind = engine_cfg.type
    if kind == "transformers":
        from astuner.engine.transformers_engine import TransformersEngine

        section = engine_cfg.transformers
        return TransformersEngine(
            model_path,
            device=section.device,
            dtype=section.dtype,
            max_batch_size=section.max_batch_size,
            cuda_graphs=section.cuda_graphs,
            seed=seed,
            tokenizer=tokenizer,
        )
    if kind == "vllm":
        from astuner.engine.vllm_engine import build_vllm_engine

        return build_vllm_engine(engine_cfg.vllm, model_path, seed=seed, log_dir=log_dir, max_model_len=max_model_len)
    if kind == "openai":
        from astuner.engine.openai_engine import OpenAIEngine

        openai = engine_cfg.openai
        if not openai.base_url:
            raise ValueError("engine.openai.base_url is required when engine.type is 'openai'")
        return OpenAIEngine(
            openai.base_url,
            openai.model_name or model_path,
            api_key_env=openai.api_key_env,
            timeout_s=openai.timeout_s,
        )
    if kind == "scripted":
        from astuner.engine.scripted_engine import ScriptedEngine

        path = engine_cfg.scripted.path
        if not path:
            raise ValueError("engine.scripted.path is required when engine.type is 'scripted'")
        return ScriptedEngine(path, tokenizer, end_of_turn_id)
    raise ValueError(f"unknown engine.type {kind!r}; expected one of {', '.join(ENGINE_TYPES)}")
