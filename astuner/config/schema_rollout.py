"""The ``astuner.rollout`` block: which workflow runs, how it samples, and which engine serves it.

Defaults follow upstream's ``astune_default.yaml``, except where astuner chose otherwise: the default
workflow is the math tutorial's. Upstream rollout keys astuner does not implement are in
``astuner.config.unsupported``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from astuner.config import compat
from astuner.config.base import StrictModel
from astuner.config.schema_auxiliary import AuxiliaryModelConfig

MadnessCheck = Literal["nonsense", "non_ascii", "format_type_1", "wrong_toolcall"]


class MultiTurnConfig(StrictModel):
    """Limits on multi-turn rollouts and the samples they produce."""

    max_sample_per_task: int = Field(
        30, ge=1,
        description=(
            "Most training samples kept per rollout after merging timelines (a seeded random subset beyond); read by "
            "the sample builder."
        ),
    )
    expected_steps: int = Field(
        1, ge=1,
        description=(
            "Expected samples per rollout; the trinity backbone sizes its trainer batch with it "
            "(buffer.train_batch_size = data.train_batch_size * num_repeat * expected_steps)."
        ),
    )


class ValKwargsConfig(StrictModel):
    """Sampling used for validation rollouts."""

    temperature: float = Field(
        0.0, ge=0.0,
        description=(
            "Sampling temperature for validation rollouts (0 = greedy; local backbone; trinity backbone: the "
            "validation taskset's rollout_args)."
        ),
    )
    top_k: int = Field(
        -1,
        description=(
            "Top-k for validation sampling (-1 = off); used by the trinity backbone (the validation taskset's "
            "rollout_args, sent to vLLM); the other backbones' engines sample with temperature and top-p."
        ),
    )
    top_p: float = Field(
        1.0, gt=0.0, le=1.0,
        description=(
            "Nucleus-sampling threshold for validation rollouts (local backbone; trinity backbone: the validation "
            "taskset's rollout_args)."
        ),
    )
    num_repeat: int = Field(
        1, ge=1,
        description=(
            "Rollouts per validation task (local backbone; trinity backbone: the validation taskset's repeat_times)."
        ),
    )


class TransformersEngineConfig(StrictModel):
    """The in-process Hugging Face transformers engine (debug and local backbones)."""

    device: str = Field(
        "auto",
        description=(
            "transformers engine: torch device, 'auto' (CUDA if available, else CPU), 'cpu', 'cuda', 'cuda:1', ..."
        ),
    )
    dtype: str = Field(
        "auto",
        description=(
            "transformers engine: weight dtype, 'auto' (bfloat16 on GPU, float32 on CPU), 'bfloat16', 'float16', "
            "'float32' or 'float64'."
        ),
    )
    max_batch_size: int = Field(
        32, ge=1, description="transformers engine: most prompts generated together in one batched forward pass."
    )
    cuda_graphs: bool = Field(
        True,
        description=(
            "transformers engine on a GPU: decode with a static KV cache and a captured CUDA graph (falls back to "
            "eager decoding, with a warning, where the model does not support it)."
        ),
    )


class OpenAIEngineConfig(StrictModel):
    """An OpenAI-compatible completions server (e.g. vLLM) that returns token ids and logprobs."""

    base_url: str = Field(
        "http://127.0.0.1:8000/v1", description="openai engine: base URL of the OpenAI-compatible server."
    )
    model_name: str = Field("", description="openai engine: model name sent with each request; empty means model.path.")
    api_key_env: str = Field(
        "OPENAI_API_KEY",
        description="openai engine: environment variable holding the API key (unset is fine for a local server).",
    )
    timeout_s: float = Field(
        600.0, gt=0.0, description="openai engine: seconds to wait for one completion before the call fails."
    )


class ScriptedEngineConfig(StrictModel):
    """Replays canned replies, for tests and demos without a model."""

    path: str = Field(
        "",
        description=(
            "scripted engine: JSONL file of scripted replies, one JSON object per line (required; absolute or "
            "relative to the config file's folder)."
        ),
    )


class VllmEngineConfig(StrictModel):
    """A ``vllm serve`` that astuner starts for the run, talks to token-exactly, and always stops."""

    port: int = Field(
        18000, ge=1, le=65535,
        description="vllm engine: port to serve on; when it is taken a free port is used instead (printed).",
    )
    host: str = Field(
        "127.0.0.1", description="vllm engine: address the server binds (loopback keeps it private to this machine)."
    )
    tensor_parallel_size: int = Field(
        1, ge=1,
        description="vllm engine: GPUs per server (--tensor-parallel-size), lowered to the number of visible GPUs.",
    )
    gpu_memory_utilization: float = Field(
        0.9, gt=0.0, le=1.0,
        description=(
            "vllm engine: fraction of each GPU's memory vLLM may take; with the local backbone the trained model "
            "shares the GPU, so lower it (e.g. 0.4)."
        ),
    )
    max_num_seqs: int = Field(
        0, ge=0, description="vllm engine: most sequences decoded at once (--max-num-seqs; 0 = vLLM's default)."
    )
    enforce_eager: bool = Field(
        True,
        description=(
            "vllm engine: skip CUDA-graph capture (--enforce-eager): faster start-up and restarts, slower decoding."
        ),
    )
    dtype: str = Field("auto", description="vllm engine: weight dtype (--dtype: auto, bfloat16, float16, float32).")
    weight_sync: Literal["reload", "restart"] = Field(
        "reload",
        description=(
            "vllm engine, local backbone: how updated weights reach the server. 'reload': it sleeps during each "
            "update and reloads the saved weights in place (--enable-sleep-mode, VLLM_SERVER_DEV_MODE=1); "
            "'restart': it is stopped and started on them (any vLLM; a full start-up per update)."
        ),
    )
    seed: int | None = Field(None, description="vllm engine: server seed (--seed); null means astuner.seed.")
    startup_timeout_s: float = Field(
        1800.0, gt=0.0,
        description="vllm engine: seconds to wait for the server to answer /health before stopping it with an error.",
    )
    request_timeout_s: float = Field(
        600.0, gt=0.0, description="vllm engine: seconds to wait for one completion before the call fails."
    )
    extra_args: list[str] = Field(
        default_factory=list,
        description="vllm engine: further `vllm serve` arguments, appended as given (e.g. ['--quantization', 'fp8']).",
    )
    executable: str = Field(
        "",
        description=(
            "vllm engine: the `vllm` program to run; empty means `vllm` on PATH, else `python -m "
            "vllm.entrypoints.cli.main` of this interpreter."
        ),
    )


class EngineConfig(StrictModel):
    """Which inference engine generates the policy's tokens during rollouts (debug and local backbones)."""

    type: Literal["transformers", "vllm", "openai", "scripted"] = Field(
        "transformers",
        description=(
            "Engine rollouts generate with: in-process 'transformers'; 'vllm', a `vllm serve` astuner starts and "
            "stops (local backbone: given the new weights after every update, see vllm.weight_sync); 'openai', a server you run; "
            "'scripted' replies. The local backbone takes 'transformers' or 'vllm'."
        ),
    )
    transformers: TransformersEngineConfig = Field(
        default_factory=TransformersEngineConfig,
        description="Settings of the transformers engine (type 'transformers').",
    )
    vllm: VllmEngineConfig = Field(
        default_factory=VllmEngineConfig, description="Settings of the vLLM server astuner launches (type 'vllm')."
    )
    openai: OpenAIEngineConfig = Field(
        default_factory=OpenAIEngineConfig, description="Settings of the OpenAI-compatible engine (type 'openai')."
    )
    scripted: ScriptedEngineConfig = Field(
        default_factory=ScriptedEngineConfig, description="Settings of the scripted engine (type 'scripted')."
    )


class RolloutConfig(StrictModel):
    """How each task is rolled out: workflow, concurrency, lengths, sampling, abnormal-output checks."""

    renamed_keys = compat.renamed_keys("rollout")

    agentscope_workflow: str = Field(
        "tutorial.example_math_agent.math_agent->ExampleMathLearn",
        description=(
            "`module->Class` (or `path/file.py->Class`, relative to the config file's folder) of the workflow run per "
            "rollout, resolved before the run starts; a `module->function` names an agentscope.tuner-style async "
            "workflow function (task, model[, auxiliary_models]) -> WorkflowOutput; old name: agentscope_learn_protocol."
        ),
    )
    auxiliary_models: dict[str, AuxiliaryModelConfig] = Field(
        default_factory=dict,
        description=(
            "Models a workflow or judge may call that are never trained, by name: agentscope.tuner's auxiliary_models "
            "argument, and workflow_task.auxiliary_models for class workflows and judges. Each is an OpenAI-compatible "
            "endpoint built per rollout as AgentScope's OpenAIChatModel: {type: openai, base_url, model_name "
            "(required), api_key_env, temperature, max_tokens, timeout_s, max_retries}; astuner serves none itself, "
            "so model_path and other serving keys are errors."
        ),
    )
    max_env_worker: int = Field(
        128, ge=1,
        description=(
            "Most rollouts running at once in training (local backbone; Trinity: runners = min(this, 128) // "
            "the number of vLLM engines); the debug backbone uses debug.debug_max_parallel."
        ),
    )
    max_rollout_retries: int = Field(
        0, ge=0,
        description=(
            "Re-runs of a rollout whose workflow or judge raised, before it is counted as failed and dropped; read by "
            "the rollout runner."
        ),
    )
    compute_madness_checklist: list[MadnessCheck] = Field(
        default_factory=lambda: ["nonsense"],
        description=(
            "Madness checks the rollout runner applies to every LLM output: nonsense, format_type_1, wrong_toolcall "
            "(non_ascii lets nonsense accept non-ASCII text); a flagged rollout gets agent_madness_reward."
        ),
    )
    agent_madness_reward: float = Field(
        -1.0,
        description=(
            "Reward that replaces the judge's (and any bad-case penalty) for a rollout a madness check flags; all its "
            "samples carry it."
        ),
    )
    max_response_length_in_one_turn: int = Field(
        4096, ge=1,
        description=(
            "Most tokens one LLM call may generate (the model tuner's max_tokens); a prompt that leaves less room than "
            "this under max_model_len is refused as a context overflow."
        ),
    )
    max_model_len: int = Field(
        18000, ge=1,
        description=(
            "Context limit in tokens, enforced by the model tuner on every call; must be >= data.max_prompt_length + "
            "data.max_response_length (trinity backbone: model.max_model_len and trainer.max_token_len_per_gpu)."
        ),
    )
    multi_turn: MultiTurnConfig = Field(default_factory=MultiTurnConfig, description="Multi-turn limits.")
    tensor_model_parallel_size: int = Field(
        1, ge=1,
        description=(
            "Tensor-parallel size of each vLLM rollout engine (trinity backbone: "
            "explorer.rollout_model.tensor_parallel_size; must be 1 on a single GPU)."
        ),
    )
    n_vllm_engine: int = Field(
        0, ge=0,
        description=(
            "Number of vLLM rollout engines, each on tensor_model_parallel_size GPUs (trinity backbone: "
            "explorer.rollout_model.engine_num). 0 = astuner's rule: 1 engine sharing the GPU when the cluster has "
            "1 GPU (Trinity's colocate mode), else half the GPUs for engines and half for the trainer "
            "(docs/trinity.md)."
        ),
    )
    max_num_seqs: int = Field(10, ge=1, description=compat.doc("rollout.max_num_seqs"))
    num_repeat: int = Field(
        4, ge=1,
        description=(
            "Rollouts per task, the GRPO group size; the debug backbone runs each task this often (trinity backbone: "
            "algorithm.repeat_times)."
        ),
    )
    temperature: float = Field(
        0.9, ge=0.0,
        description=(
            "Sampling temperature of rollouts, passed by the model tuner to the engine on every call (the scripted "
            "engine ignores it); trinity backbone: also the temperature Trinity's trainer recomputes logprobs at."
        ),
    )
    top_p: float = Field(
        1.0, gt=0.0, le=1.0,
        description=(
            "Nucleus-sampling threshold of rollouts, passed by the model tuner to the engine on every call (the "
            "scripted engine ignores it; trinity backbone: also model.top_p)."
        ),
    )
    val_kwargs: ValKwargsConfig = Field(
        default_factory=ValKwargsConfig,
        description="Sampling for validation rollouts of the local backbone (the debug backbone samples like training).",
    )
    engine: EngineConfig = Field(
        default_factory=EngineConfig,
        description=(
            "The inference engine that generates rollouts (debug and local backbones; docs/engines.md); the trinity "
            "backbone ignores it and generates on Trinity's vLLM engines."
        ),
    )
