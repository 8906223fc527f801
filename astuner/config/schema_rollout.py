"""The ``astuner.rollout`` block: which workflow runs, how it samples, and which engine serves it.

Defaults follow upstream's ``astune_default.yaml`` (plus the three rollout keys ``verl_default``
adds), except where astuner chose otherwise: the default workflow is the math tutorial's.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from astuner.config.base import StrictModel

MadnessCheck = Literal["nonsense", "non_ascii", "format_type_1", "wrong_toolcall"]


class MultiTurnConfig(StrictModel):
    """Limits on multi-turn rollouts and the samples they produce."""

    max_sample_per_task: int = Field(
        30, ge=1, description="Most training samples kept per rollout after merging timelines (a random subset beyond)."
    )
    max_steps: int = Field(
        30, ge=1,
        description=(
            "Step limit of upstream's classic (non-AgentScope) runner; accepted for compatibility; not used by "
            "astuner."
        ),
    )
    expected_steps: int = Field(
        1, ge=1,
        description=(
            "Expected samples per rollout; only sizes Trinity's trainer batch (train_batch_size * num_repeat * "
            "expected_steps)."
        ),
    )


class ValKwargsConfig(StrictModel):
    """Sampling used for validation rollouts."""

    temperature: float = Field(0.0, ge=0.0, description="Sampling temperature for validation (0 = greedy).")
    top_k: int = Field(-1, description="Top-k for validation sampling (-1 = off).")
    top_p: float = Field(1.0, gt=0.0, le=1.0, description="Nucleus-sampling threshold for validation.")
    do_sample: bool = Field(
        False,
        description="Upstream's verl switch; accepted for compatibility; not used by astuner (temperature decides).",
    )
    num_repeat: int = Field(1, ge=1, description="Rollouts per validation task.")


class TransformersEngineConfig(StrictModel):
    """The in-process Hugging Face transformers engine (debug and local backbones)."""

    device: str = Field(
        "auto",
        description="Torch device to run on: 'auto' (CUDA if available, else CPU), 'cpu', 'cuda', 'cuda:1', ...",
    )
    dtype: str = Field(
        "auto",
        description="Weight dtype: 'auto' (bfloat16 on GPU, float32 on CPU), 'bfloat16', 'float16' or 'float32'.",
    )
    max_batch_size: int = Field(32, ge=1, description="Most prompts generated together in one batched forward pass.")


class OpenAIEngineConfig(StrictModel):
    """An OpenAI-compatible completions server (e.g. vLLM) that returns token ids and logprobs."""

    base_url: str = Field("http://127.0.0.1:8000/v1", description="Base URL of the OpenAI-compatible server.")
    model_name: str = Field("", description="Model name sent with each request; empty means model.path.")
    api_key_env: str = Field(
        "OPENAI_API_KEY",
        description="Environment variable holding the API key (unset is fine for a local server).",
    )
    timeout_s: float = Field(600.0, gt=0.0, description="Seconds to wait for one completion before the call fails.")


class ScriptedEngineConfig(StrictModel):
    """Replays canned replies, for tests and demos without a model."""

    path: str = Field("", description="JSONL file of scripted replies, one JSON object per line.")


class EngineConfig(StrictModel):
    """Which inference engine generates the policy's tokens during rollouts (debug and local backbones)."""

    type: Literal["transformers", "openai", "scripted"] = Field(
        "transformers",
        description="Engine kind: in-process 'transformers', an 'openai'-compatible server, or 'scripted' replies.",
    )
    transformers: TransformersEngineConfig = Field(
        default_factory=TransformersEngineConfig,
        description="Settings of the transformers engine (type 'transformers').",
    )
    openai: OpenAIEngineConfig = Field(
        default_factory=OpenAIEngineConfig, description="Settings of the OpenAI-compatible engine (type 'openai')."
    )
    scripted: ScriptedEngineConfig = Field(
        default_factory=ScriptedEngineConfig, description="Settings of the scripted engine (type 'scripted')."
    )


class RolloutConfig(StrictModel):
    """How each task is rolled out: workflow, concurrency, lengths, sampling, abnormal-output checks."""

    renamed_keys = {"agentscope_learn_protocol": "agentscope_workflow"}

    agentscope_workflow: str = Field(
        "tutorial.example_math_agent.math_agent->ExampleMathLearn",
        description=(
            "`module->Class` (or `path/file.py->Class`) of the workflow run per rollout; old name: "
            "agentscope_learn_protocol."
        ),
    )
    use_agentscope_protocol: bool = Field(
        True,
        description=(
            "Seed-era switch for the AgentScope workflow path; accepted for compatibility; astuner always uses it."
        ),
    )
    agentscope_disable_toolcalls: bool = Field(
        False, description="Drop tool messages and tools from prompts and skip tool-call parsing."
    )
    max_env_worker: int = Field(
        128, ge=1,
        description="Most rollouts running at once (Trinity: runners = min(this, 128) // n_vllm_engine).",
    )
    max_rollout_retries: int = Field(
        0, ge=0, description="Re-runs of a failed rollout before it is counted as failed and dropped from the step."
    )
    gamma: float = Field(1.0, description="Step-reward discount; must stay 1.0 (as upstream asserts).")
    compute_madness_checklist: list[MadnessCheck] = Field(
        default_factory=lambda: ["nonsense"],
        description=(
            "Abnormal-output checks run on every LLM output: nonsense, non_ascii, format_type_1, wrong_toolcall."
        ),
    )
    agent_madness_termination: bool = Field(
        True, description="Once a rollout is flagged by a madness check, stop tracking its later LLM calls."
    )
    agent_madness_reward: float = Field(
        -1.0,
        description="Reward given to every sample of a rollout flagged by a madness check.",
    )
    max_response_length_in_one_turn: int = Field(4096, ge=1, description="Most tokens one LLM call may generate.")
    max_model_len: int = Field(
        18000, ge=1,
        description="Context limit in tokens; must be >= data.max_prompt_length + data.max_response_length.",
    )
    multi_turn: MultiTurnConfig = Field(default_factory=MultiTurnConfig, description="Multi-turn limits.")
    tensor_model_parallel_size: int = Field(
        1, ge=1,
        description="Tensor-parallel size of each vLLM rollout engine (trinity backbone).",
    )
    n_vllm_engine: int = Field(2, ge=1, description="Number of vLLM rollout engines (trinity backbone).")
    max_num_seqs: int = Field(
        10, ge=1,
        description=(
            "Upstream's per-engine sequence limit; accepted for compatibility; not used by astuner (dead upstream "
            "too)."
        ),
    )
    name: Literal["vllm", "sglang"] = Field(
        "vllm",
        description=(
            "Upstream's inference-server dialect; accepted for compatibility; astuner picks engines with "
            "rollout.engine.type."
        ),
    )
    num_repeat: int = Field(4, ge=1, description="Rollouts per task: the GRPO group size.")
    temperature: float = Field(0.9, ge=0.0, description="Sampling temperature for training rollouts.")
    top_p: float = Field(1.0, gt=0.0, le=1.0, description="Nucleus-sampling threshold for training rollouts.")
    val_kwargs: ValKwargsConfig = Field(
        default_factory=ValKwargsConfig,
        description="Sampling for validation rollouts.",
    )
    engine: EngineConfig = Field(
        default_factory=EngineConfig,
        description="The inference engine of the debug and local backbones.",
    )
    step_skip_action: int = Field(
        0, ge=0,
        description=(
            "verl_default key (skip action generation every N steps); accepted for compatibility; not used by astuner."
        ),
    )
    submit_oversample_multiplier: float = Field(
        1.5,
        description=(
            "verl_default key (oversampling factor of dynamic rollout); accepted for compatibility; not used by "
            "astuner."
        ),
    )
    enable_oversample: bool = Field(
        False,
        description="verl_default key (dynamic oversampled rollout); accepted for compatibility; not used by astuner.",
    )

    @field_validator("gamma")
    @classmethod
    def _gamma_is_one(cls, value: float) -> float:
        """Rewards are per rollout, so a discount would silently change nothing; refuse it instead."""
        if value != 1.0:
            raise ValueError(f"must be 1.0 (step-reward discounting is not supported), got {value}")
        return value
