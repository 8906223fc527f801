"""Inference engines (token ids in, token ids and logprobs out) and ``build_engine``.

Engine modules are imported only when built, so ``import astuner.engine`` stays light
(no torch import, no HTTP client until needed).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from astuner.engine.base import Completion, Engine, EngineError, SamplingParams

ENGINE_TYPES = ("transformers", "vllm", "openai", "scripted")

__all__ = ["ENGINE_TYPES", "Completion", "Engine", "EngineError", "SamplingParams", "build_engine"]


def _get(section: Any, key: str, default: Any = None) -> Any:
    """Read ``key`` from a config object or a plain dict; a missing section or key gives ``default``."""
    if section is None:
        return default
    if isinstance(section, dict):
        value = section.get(key, default)
    else:
        value = getattr(section, key, default)
    return default if value is None else value


def build_engine(
    engine_cfg: Any,
    model_path: str,
    tokenizer: Any,
    end_of_turn_id: int,
    seed: int = 0,
    *,
    log_dir: str | Path | None = None,
    max_model_len: int | None = None,
) -> Engine:
    """Build the engine named by ``engine_cfg.type``.

    ``engine_cfg`` is the config's engine section (an object with attributes, or a dict) with
    ``type`` and the sub-sections ``transformers`` (``device``, ``dtype``, ``max_batch_size``),
    ``vllm`` (see ``astuner.engine.vllm_engine.build_vllm_engine``; the server's log goes to
    ``log_dir`` and ``max_model_len`` becomes ``--max-model-len``), ``openai`` (``base_url``,
    ``model_name`` — defaults to ``model_path`` —, ``api_key_env``, ``timeout_s``) and
    ``scripted`` (``path``). Raises ``ValueError`` for an unknown type or a missing required key,
    ``EngineError`` when a vLLM server cannot be started (nothing is left running then). The
    tokenizer is shared with the transformers engine, not reloaded.
    """
    kind = _get(engine_cfg, "type", "transformers")
    if kind == "transformers":
        from astuner.engine.transformers_engine import TransformersEngine

        section = _get(engine_cfg, "transformers")
        return TransformersEngine(
            model_path,
            device=_get(section, "device", "auto"),
            dtype=_get(section, "dtype", "auto"),
            max_batch_size=int(_get(section, "max_batch_size", 32)),
            cuda_graphs=bool(_get(section, "cuda_graphs", True)),
            seed=seed,
            tokenizer=tokenizer,
        )
    if kind == "vllm":
        from astuner.engine.vllm_engine import build_vllm_engine

        return build_vllm_engine(
            _get(engine_cfg, "vllm"), model_path, seed=seed, log_dir=log_dir, max_model_len=max_model_len
        )
    if kind == "openai":
        from astuner.engine.openai_engine import OpenAIEngine

        section = _get(engine_cfg, "openai")
        base_url = _get(section, "base_url")
        if not base_url:
            raise ValueError("engine.openai.base_url is required when engine.type is 'openai'")
        return OpenAIEngine(
            base_url,
            _get(section, "model_name") or model_path,
            api_key_env=_get(section, "api_key_env", "OPENAI_API_KEY"),
            timeout_s=float(_get(section, "timeout_s", 600)),
        )
    if kind == "scripted":
        from astuner.engine.scripted_engine import ScriptedEngine

        path = _get(_get(engine_cfg, "scripted"), "path")
        if not path:
            raise ValueError("engine.scripted.path is required when engine.type is 'scripted'")
        return ScriptedEngine(path, tokenizer, end_of_turn_id)
    raise ValueError(f"unknown engine.type {kind!r}; expected one of {', '.join(ENGINE_TYPES)}")
