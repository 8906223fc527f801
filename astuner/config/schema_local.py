"""The ``astuner.local`` block: settings only the one-process ``local`` backbone reads."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from astuner.config.base import StrictModel

_LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


class LocalConfig(StrictModel):
    """The local backbone: GRPO in one process on one GPU (or CPU)."""

    device: str = Field("auto", description="Torch device for the policy ('auto' = cuda if available, else cpu).")
    dtype: Literal["auto", "float64", "float32", "bfloat16", "float16"] = Field(
        "auto",
        description=(
            "Weights dtype ('auto' = bfloat16 on GPU, float32 on CPU). float64 makes CPU decoding independent of "
            "which rollouts share a batch (used by the CI miniature; slower)."
        ),
    )
    max_steps: int = Field(
        0, ge=0, description="Stop after this many training steps (0 = trainer_common.total_epochs passes over the tasks)."
    )
    micro_batch_tokens: int = Field(
        8192, ge=1, description="Most padded tokens per forward/backward micro-batch (gradients accumulate across them)."
    )
    lora_rank: int = Field(0, ge=0, description="LoRA rank through peft (0 = full fine-tuning).")
    lora_alpha: int = Field(32, ge=1, description="LoRA alpha (scaling = alpha / rank).")
    lora_target_modules: list[str] = Field(
        default_factory=lambda: list(_LORA_TARGETS), description="Module names LoRA adapts."
    )
    gradient_checkpointing: bool = Field(False, description="Recompute activations in the backward pass to save memory.")
    grad_clip: float = Field(1.0, ge=0.0, description="Clip the gradient norm to this (0 = no clipping).")
    clip_range: float = Field(0.2, gt=0.0, description="PPO clip range of the importance ratio (1 ± this).")
    clip_ratio_c: float = Field(3.0, gt=1.0, description="Dual-clip bound for negative advantages (as trinity-rft).")
    loss_agg_mode: Literal["token-mean", "seq-mean-token-mean", "seq-mean-token-sum"] = Field(
        "token-mean", description="How per-token losses reduce to one number (trinity-rft/verl names)."
    )
    weight_decay: float = Field(0.0, ge=0.0, description="AdamW weight decay.")
    val_max_tasks: int = Field(0, ge=0, description="Validate on at most this many validation tasks (0 = all).")
    keep_checkpoints: int = Field(2, ge=1, description="Keep this many newest checkpoints.")
    resume_mode: Literal["auto", "disable"] = Field(
        "auto",
        description=(
            "auto: rerunning the same command resumes the newest unfinished run of this config from its last "
            "checkpoint; disable: always start fresh."
        ),
    )
    save_rollouts: bool = Field(True, description="Write every step's rollouts (tokens, masks) to rollouts/step_<N>.jsonl.")
