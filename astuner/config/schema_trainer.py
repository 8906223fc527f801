"""The ``astuner.trainer_common`` block: the training loop shared by the local and trinity backbones.

Each key names the backbone that reads it and, for the trinity backbone, the Trinity-RFT key it
becomes (``astuner/backbone/trinity/config.py``). verl's advantage and FSDP settings, which
upstream kept here, are not implemented (``astuner.config.unsupported``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from astuner.config.base import StrictModel
from astuner.tracking.names import normalize_logger


class OptimConfig(StrictModel):
    """Optimizer."""

    lr: float = Field(
        1e-6, gt=0.0,
        description=(
            "Learning rate (local backbone; trinity backbone: algorithm.optimizer.lr)."
        ),
    )


class TrainerCommonConfig(StrictModel):
    """Training-loop settings shared by the training backbones."""

    val_before_train: bool = Field(
        False,
        description=(
            "Run validation before the first training step (local backbone; trinity backbone: "
            "explorer.eval_on_startup)."
        ),
    )
    save_freq: int = Field(
        20, ge=1,
        description=(
            "Save a checkpoint every this many steps (local backbone; Trinity: trainer.save_interval)."
        ),
    )
    test_freq: int = Field(
        20, ge=1,
        description=(
            "Validate every this many steps (local backbone; Trinity: explorer.eval_interval)."
        ),
    )
    total_epochs: int = Field(
        50, ge=1,
        description=(
            "Passes over the training tasks (local backbone, unless local.max_steps stops it earlier; Trinity: "
            "buffer.total_epochs)."
        ),
    )
    nnodes: int = Field(
        1, ge=1,
        description=(
            "Nodes in the cluster (trinity backbone: cluster.node_num; the launch checks that the Ray cluster has "
            "nnodes * n_gpus_per_node GPUs)."
        ),
    )
    n_gpus_per_node: int | Literal["auto"] = Field(
        "auto",
        description=(
            "GPUs per node (trinity backbone: cluster.gpu_per_node; the trainer gets the GPUs the vLLM rollout "
            "engines leave, or shares the only GPU with the one engine when nnodes * n_gpus_per_node = 1); 'auto': "
            "the GPUs this machine's CUDA sees when the run starts (on a multi-node cluster, the head node's)."
        ),
    )
    logger: str | list[str] = Field(
        "none",
        description=(
            "Experiment trackers the local backbone feeds besides metrics.jsonl: 'none' (local files only), one of "
            "'tensorboard' (<exp>/tensorboard), 'wandb', 'swanlab', 'mlflow', or a list of them such as "
            "[tensorboard, wandb]; 'console' is accepted and dropped (the console always logs). A tracker whose "
            "package is missing is a one-line error before the model loads; a resumed run continues the same tracker "
            "runs (ids in <exp>/tracker_ids.json); each validation sends a table of completions "
            "(docs/metrics.md#trackers). Trinity: monitor.monitor_type, the first tracker ('none' meaning tensorboard). "
            "The debug backbone only writes local files."
        ),
    )
    mini_batch_num: int = Field(
        1, ge=1,
        description=(
            "Optimizer updates per training step (the batch is split into this many mini-batches; local "
            "backbone)."
        ),
    )
    optim: OptimConfig = Field(default_factory=OptimConfig, description="Optimizer (local backbone: AdamW).")
    use_kl_loss: bool = Field(
        True,
        description=(
            "Add a KL-to-reference term to the policy loss (local backbone; trinity backbone: algorithm.kl_loss_fn "
            "is 'none' when off — upstream did not map it)."
        ),
    )
    kl_loss_coef: float = Field(
        0.002, ge=0.0,
        description=(
            "Weight of the KL loss term (local backbone; 0 = no reference model is loaded; trinity backbone: "
            "algorithm.kl_loss_fn_args.kl_coef)."
        ),
    )
    kl_loss_type: str = Field(
        "low_var_kl",
        description=(
            "KL estimator of the KL loss term: low_var_kl, k1, k2 or k3 (local backbone; trinity backbone: "
            "algorithm.kl_loss_fn)."
        ),
    )
    ulysses_sequence_parallel_size: int = Field(
        1, ge=1,
        description=(
            "Ulysses sequence-parallel size of the trinity backbone's trainer (trainer.ulysses_sequence_parallel_size)."
        ),
    )
    checkpoint_base_dir: str = Field(
        "./saved_checkpoints",
        description=(
            "Directory for checkpoints (Trinity: checkpoint_root_dir); the local backbone keeps its checkpoints in "
            "<exp-dir>/<name>/checkpoints instead."
        ),
    )

    @field_validator("logger", mode="before")
    @classmethod
    def _logger_names(cls, value: Any) -> str | list[str]:
        """One stored form: 'none', one name, or a list of two or more (seed-era [console, swanlab] gives
        'swanlab': the console always logs); an unknown name is an error here, before a run starts."""
        return normalize_logger(value)
