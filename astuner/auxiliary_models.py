"""The auxiliary models of one rollout, built from ``astuner.rollout.auxiliary_models``.

An auxiliary model is one a workflow or judge calls without training it (an LLM judge, the other
players of a game). Each configured entry becomes AgentScope's own ``OpenAIChatModel`` pointed at
the entry's endpoint, non-streaming. They are built afresh for every rollout, on the rollout's
event loop, because an async HTTP client must not be shared between event loops (the trinity
backbone runs rollouts on several); building one costs no request.

Workflows see them as ``workflow_task.auxiliary_models`` (a function workflow or judge as its
``auxiliary_models`` argument). Calls through them are not recorded, so they never become samples.

Not guaranteed: that the endpoint is reachable or the key valid (the first call tells, and the
rollout fails like any workflow error); the API key is read from its variable when the rollout starts.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from astuner.config.schema_auxiliary import AuxiliaryModelConfig

NO_KEY = "EMPTY"


def build_auxiliary_models(configs: Mapping[str, AuxiliaryModelConfig]) -> dict[str, Any]:
    """``{name: ChatModelBase}`` for one rollout; an empty mapping gives ``{}`` without importing agentscope."""
    if not configs:
        return {}
    from agentscope.model import OpenAIChatModel

    models: dict[str, Any] = {}
    for name, config in configs.items():
        generate: dict[str, Any] = {}
        if config.temperature is not None:
            generate["temperature"] = config.temperature
        if config.max_tokens is not None:
            generate["max_tokens"] = config.max_tokens
        models[name] = OpenAIChatModel(
            model_name=config.model_name,
            api_key=os.environ.get(config.api_key_env) or NO_KEY,
            stream=False,
            client_kwargs={"base_url": config.base_url, "timeout": config.timeout_s, "max_retries": config.max_retries},
            generate_kwargs=generate,
        )
    return models
