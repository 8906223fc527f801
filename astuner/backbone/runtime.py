"""What every backbone builds from a config before rolling out: tokenizer, engine, workflow, judge.

``model.path`` may be a local Hugging Face directory, a Hub id (needs network), or the offline
default ``astuner://tiny``: a random Qwen2-architecture model with a small tokenizer, built once
into ``$ASTUNER_CACHE`` (default ``~/.cache/astuner``) by ``astuner.tiny_model``. It produces noise;
it exists so the pipeline runs anywhere.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from astuner.chat_template import ChatTemplate, ChatTemplateError
from astuner.engine import build_engine
from astuner.engine.base import Engine, EngineError
from astuner.components import judge_class, workflow_class
from astuner.rollout import Rollouts

if TYPE_CHECKING:
    from astuner.config.schema import Config

TINY_MODEL = "astuner://tiny"


class SetupError(Exception):
    """A problem with what the config points at (model, workflow, judge), found before rolling out."""


@dataclass
class Runtime:
    tokenizer: Any
    template: ChatTemplate
    engine: Engine
    rollouts: Rollouts
    model_path: str

    def close(self) -> None:
        """Stop the engine (a ``vllm`` engine's server with it) and the Python tool's warm sandboxes."""
        from astuner.tool import shutdown

        self.engine.close()
        shutdown()


def model_path(path: str) -> str:
    """The directory to load: ``astuner://tiny`` builds (once) and returns the tiny model."""
    if path == TINY_MODEL:
        from astuner.tiny_model import build_tiny_model

        cache = Path(os.environ.get("ASTUNER_CACHE", Path.home() / ".cache" / "astuner"))
        return str(build_tiny_model(cache / "tiny-qwen2"))
    return path


def build_runtime(config: Config, *, tokenizer: Any = None, engine: Engine | None = None) -> Runtime:
    """Everything a rollout needs; a backbone that owns the model passes its tokenizer and engine.

    The engine is built from the ``astuner.rollout.engine`` block; the judge and ``Rollouts`` get the
    whole config (judges and seed-style workflows are handed it).
    """
    a = config.astuner
    workflow_cls = _resolve_key("astuner.rollout.agentscope_workflow", workflow_class, a.rollout.agentscope_workflow)
    judge_cls = _resolve_key("astuner.task_judge.judge_protocol", judge_class, a.task_judge.judge_protocol)
    judge = judge_cls(config)
    path = model_path(a.model.path)
    tokenizer = tokenizer if tokenizer is not None else _load_tokenizer(path)
    try:
        template = ChatTemplate(tokenizer)
    except ChatTemplateError as exc:
        raise SetupError(f"astuner.model.path: {exc}") from exc
    try:
        engine = engine or build_engine(
            a.rollout.engine, path, tokenizer, template.turn.end_of_turn_id, seed=a.seed,
            log_dir=_experiment_dir(a.experiment_dir), max_model_len=a.rollout.max_model_len,
        )
    except (ValueError, EngineError) as exc:
        raise SetupError(f"astuner.rollout.engine: {exc}") from exc
    return Runtime(tokenizer, template, engine, Rollouts(config, engine, template, workflow_cls, judge), path)


def _experiment_dir(directory: str) -> str | None:
    """``astuner.experiment_dir`` once the launch has set it (an absolute path), else None."""
    return directory if os.path.isabs(directory) else None


def _load_tokenizer(path: str) -> Any:
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SetupError(f"astuner.model.path: cannot load a tokenizer from {path!r}: {first}") from exc


def _resolve_key(key: str, load: Callable[[str], type], spec: str) -> type:
    from astuner.resolve import ResolveError

    try:
        return load(spec)
    except ResolveError as exc:
        raise SetupError(f"{key}: {exc}") from exc
