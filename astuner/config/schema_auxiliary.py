"""One entry of ``astuner.rollout.auxiliary_models``: a model workflows and judges may call, never trained.

agentscope.tuner's ``tune(auxiliary_models={name: TunerModelConfig(model_path=...)})`` has Trinity
serve each auxiliary model on its own vLLM engines. astuner does not serve auxiliary models: it
connects to an OpenAI-compatible chat endpoint you run or rent (``vllm serve``, DashScope, ...), so
a ``TunerModelConfig``-style entry (``model_path``, ``tensor_parallel_size``, ...) is rejected with
a one-line error saying so instead of being silently ignored.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from astuner.config.base import StrictModel

SERVING_KEYS = (
    "model_path", "max_model_len", "tensor_parallel_size", "inference_engine_num", "tool_call_parser",
    "reasoning_parser", "tinker_config", "enable_thinking",
)
"""agentscope ``TunerModelConfig`` keys that describe serving a model, which astuner does not do."""


class AuxiliaryModelConfig(StrictModel):
    """An OpenAI-compatible chat model, built for each rollout as AgentScope's ``OpenAIChatModel``."""

    type: Literal["openai"] = Field(
        "openai", description="Kind of model: 'openai', an OpenAI-compatible chat-completions endpoint."
    )
    base_url: str = Field(
        "http://127.0.0.1:8000/v1", description="Base URL of the endpoint (the client appends /chat/completions)."
    )
    model_name: str = Field(..., min_length=1, description="Model name sent with every request (required).")
    api_key_env: str = Field(
        "OPENAI_API_KEY",
        description=(
            "NAME of the environment variable holding the API key; unset sends 'EMPTY' (fine for a local server)."
        ),
    )
    temperature: float | None = Field(
        None, ge=0.0, description="Sampling temperature sent with every request; null: the server's default."
    )
    max_tokens: int | None = Field(
        None, ge=1, description="Most tokens one reply may have; null: the server's default."
    )
    timeout_s: float = Field(60.0, gt=0.0, description="Seconds to wait for one request.")
    max_retries: int = Field(2, ge=0, description="Retries of a failed request by the OpenAI client.")

    @model_validator(mode="before")
    @classmethod
    def _not_served_here(cls, data: Any) -> Any:
        """Reject agentscope.tuner's serving keys with what to do instead."""
        if isinstance(data, dict):
            serving = [key for key in SERVING_KEYS if key in data]
            if serving:
                raise ValueError(
                    f"{', '.join(serving)}: astuner does not serve auxiliary models; start a server yourself "
                    "(e.g. `vllm serve <model_path>`) and give its base_url and model_name"
                )
        return data
