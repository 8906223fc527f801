"""The typed config: the root ``Config`` and the small ``astuner.*`` blocks.

Every key upstream's ``astune_default.yaml`` defines exists here with upstream's default, unless
astuner deliberately chose otherwise (noted in the key's doc); keys astuner does not act on say so.
The larger blocks live in ``schema_rollout`` and ``schema_task``. ``docs/config.md`` and
``astuner/config/default.yaml`` are generated from these classes.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from astuner.config.base import StrictModel
from astuner.config.schema_local import LocalConfig
from astuner.config.schema_rollout import RolloutConfig
from astuner.config.schema_task import TaskJudgeConfig, TaskReaderConfig
from astuner.tracking.names import normalize_logger

_TRAINER_ONLY = "accepted for compatibility; not used by astuner's backbones (verl-only upstream)"


class ModelConfig(StrictModel):
    """The policy model."""

    path: str = Field(
        "/path/to/model/such/as/Qwen/Qwen2___5-14B-Instruct",
        description=(
            "The model to train: a local Hugging Face directory (a relative one is looked up from the config file's "
            "folder), a Hub id or astuner://tiny; the debug backbone loads "
            "its tokenizer (and, with the transformers engine, its weights) from it. Placeholder by default."
        ),
    )


class DataConfig(StrictModel):
    """Token budgets and batch size."""

    max_prompt_length: int = Field(
        3000, ge=1,
        description=(
            "Most prompt tokens of one training sample; only checked when the config loads (with "
            "max_response_length it must fit rollout.max_model_len); prompts are not cut to it yet (planned for the "
            "local/trinity backbone)."
        ),
    )
    max_response_length: int = Field(
        15000, ge=1,
        description=(
            "Most response tokens of one training sample: the sample builder cuts a longer sample there and marks "
            "it truncated; also checked against rollout.max_model_len when the config loads."
        ),
    )
    train_batch_size: int = Field(
        32, ge=1,
        description=(
            "Tasks per training step (samples per step = this * rollout.num_repeat * "
            "rollout.multi_turn.expected_steps); local backbone: tasks per step (Trinity: buffer.batch_size)."
        ),
    )


class DebugConfig(StrictModel):
    """Settings of the debug backbone, which rolls out a few tasks and never trains."""

    debug_max_parallel: int = Field(16, ge=1, description="debug backbone: most rollouts it runs at once.")
    debug_first_n_tasks: int = Field(
        2, ge=1,
        description=(
            "debug backbone: how many tasks it rolls out, from the start of debug_split's list (shuffled when "
            "task_reader.shuffle is on)."
        ),
    )
    debug_split: Literal["train", "validation"] = Field(
        "validation",
        description="debug backbone: which task list it reads ('validation' falls back to 'train' when empty).",
    )
    debug_vllm_port: int = Field(
        18000,
        description=(
            "Port of upstream's debug vLLM server; accepted for compatibility; not used (the debug backbone "
            "generates with rollout.engine)."
        ),
    )
    debug_vllm_seed: int = Field(
        12345,
        description=(
            "Seed of upstream's debug vLLM server; accepted for compatibility; not used (sampling is seeded from "
            "astuner.seed)."
        ),
    )
    debug_tensor_parallel_size: int = Field(
        4, ge=1,
        description=(
            "Tensor-parallel size of upstream's debug vLLM server; accepted for compatibility; not used (see "
            "rollout.engine)."
        ),
    )


class AlgorithmConfig(StrictModel):
    """Advantage estimation."""

    task_norm_patch: bool = Field(False, description=f"verl task-normalisation patch; {_TRAINER_ONLY}.")
    adv_estimator: str = Field(
        "grpo",
        description=(
            "Advantage estimator (only 'grpo' is planned); accepted for compatibility; not used yet (planned for the "
            "local/trinity backbone)."
        ),
    )
    use_kl_in_reward: bool = Field(False, description=f"Put a KL penalty into the reward; {_TRAINER_ONLY}.")


class FsdpConfig(StrictModel):
    """FSDP offloading."""

    param_offload: bool = Field(True, description=f"Offload parameters to CPU; {_TRAINER_ONLY}.")
    optimizer_offload: bool = Field(True, description=f"Offload optimizer state to CPU; {_TRAINER_ONLY}.")


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
    val_pass_n: int = Field(
        4, ge=1,
        description=(
            "n of the pass@n validation metric; accepted for compatibility; not used yet (the local backbone "
            "reports success rate over rollout.val_kwargs.num_repeat rollouts)."
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
    algorithm: AlgorithmConfig = Field(
        default_factory=AlgorithmConfig, description="Advantage estimation; no key in it is used yet."
    )
    mini_batch_num: int = Field(
        1, ge=1,
        description=(
            "Optimizer updates per training step (the batch is split into this many mini-batches; local "
            "backbone)."
        ),
    )
    fsdp_config: FsdpConfig = Field(default_factory=FsdpConfig, description="FSDP offloading; not used.")
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


class ContextTrackerConfig(StrictModel):
    """Upstream's context tracker for the classic (non-AgentScope) runner."""

    context_tracker_type: str = Field(
        "linear",
        description="Tracker kind; accepted for compatibility; not used (astuner has no classic runner).",
    )
    alien_llm_model: str = Field(
        "qwen3-235b-a22b-instruct-2507",
        description=(
            "Helper LLM of the tracker; accepted for compatibility; not used (the LLM judge reads "
            "task_judge.alien_llm_model)."
        ),
    )
    alien_llm_response_length: int = Field(
        512, ge=1,
        description=(
            "Token limit of the tracker's helper LLM; accepted for compatibility; not used (the LLM judge reads "
            "task_judge.alien_llm_response_length)."
        ),
    )
    max_env_len: int = Field(
        4096, ge=1,
        description="Token clip of environment observations; accepted for compatibility; not used.",
    )


class PythonToolConfig(StrictModel):
    """Limits and sandbox of the Python tool (astuner.tool.execute_python_code)."""

    timeout_s: float = Field(
        10.0, gt=0.0,
        description=(
            "execute_python_code: wall-clock limit of one code run, from the moment the program is handed to its "
            "sandbox; every process it started is then killed. The model may ask for less, never more."
        ),
    )
    max_output_chars: int = Field(
        8192, ge=1,
        description=(
            "execute_python_code: stdout and stderr are each cut to this many bytes (head and tail kept, with a note "
            "of how much was cut)."
        ),
    )
    memory_mb: int = Field(
        1024, ge=16, description="execute_python_code: address-space limit (RLIMIT_AS) of each of the code's processes, in MiB."
    )
    isolation: Literal["auto", "bwrap", "process"] = Field(
        "auto",
        description=(
            "execute_python_code sandbox: 'bwrap' = bubblewrap namespaces (no network, read-only host, private /tmp, "
            "own PID namespace; fails if bubblewrap cannot build one); 'process' = the fallback (rlimits, a dedicated "
            "uid when run as root, network and mount namespaces where the kernel allows; host processes visible); "
            "'auto' = bwrap when it works on this machine, else 'process' with a one-time warning naming what is not "
            "protected. Details: astuner/tool/sandbox.py."
        ),
    )
    max_processes: int = Field(
        64, ge=1,
        description=(
            "execute_python_code: processes (threads count) the code may start on top of its own (RLIMIT_NPROC); "
            "enforced for root callers too, through a dedicated uid."
        ),
    )
    max_file_mb: int = Field(
        64, ge=1, description="execute_python_code: largest file the code may write (RLIMIT_FSIZE), in MiB."
    )
    max_open_files: int = Field(
        256, ge=16, description="execute_python_code: open file descriptors per process (RLIMIT_NOFILE)."
    )
    scratch_mb: int = Field(
        256, ge=1,
        description=(
            "execute_python_code: size in MiB of the private tmpfs /tmp (and /var/tmp, /dev/shm) holding the code's "
            "scratch dir; it is RAM, not counted in memory_mb. Without a mount namespace (non-root 'process' "
            "fallback without user namespaces) the scratch dir is on the host's disk and its size is checked every "
            "0.05 s instead (the code is killed once over: a soft cap)."
        ),
    )
    pool_size: int = Field(
        4, ge=0,
        description=(
            "execute_python_code: sandboxes kept started ahead of calls (each serves exactly one program, then is "
            "replaced); process-wide, the most recent call's value wins; 0 starts every sandbox on demand."
        ),
    )


class LogviewConfig(StrictModel):
    """The log viewer (--with-logview) and the training-curve PNG."""

    port: int = Field(
        8181, ge=0, le=65535,
        description=(
            "--with-logview: the port the viewer tries first, on 127.0.0.1 only; when it is taken the next free one is "
            "used and printed (0: any free port)."
        ),
    )
    stay: bool = Field(
        False,
        description="--with-logview: keep serving after the run ends, until Ctrl-C (default: stop with the run).",
    )
    plot_every: int = Field(
        5, ge=1,
        description=(
            "Redraw <experiment dir>/training_curve.png from metrics.jsonl every this many training steps and at the end "
            "of training; the debug backbone logs no steps and draws debug_summary.png instead."
        ),
    )


class AstunerConfig(StrictModel):
    """Everything under the ``astuner:`` (or seed-era ``astune:``) root key."""

    project_name: str = Field(
        "astune_default_project",
        description=(
            "Project name (trinity backbone: project, part of its checkpoint path checkpoint_root_dir/project/name; "
            "trackers group runs by it)."
        ),
    )
    experiment_name: str = Field(
        "read_yaml_name",
        description=(
            "Run name and directory name under --exp-dir; 'read_yaml_name' means <yaml file name>_<YYYYmmdd_HHMM>; "
            "'|' becomes '-'."
        ),
    )
    experiment_dir: str = Field(
        "auto",
        description=(
            "Output, not input: set at launch to the absolute <exp-dir>/<experiment_name> (a value in the file is "
            "replaced); 'auto' before that."
        ),
    )
    backbone: Literal["debug", "local", "trinity"] = Field(
        "debug",
        description=(
            "Set at launch from --backbone (a value in the file is replaced)."
        ),
    )
    seed: int = Field(
        42,
        description=(
            "Seeds the task shuffle, the engine's per-call sampling and which samples max_sample_per_task keeps."
        ),
    )
    model: ModelConfig = Field(default_factory=ModelConfig, description="The policy model.")
    data: DataConfig = Field(default_factory=DataConfig, description="Token budgets and batch size.")
    rollout: RolloutConfig = Field(
        default_factory=RolloutConfig,
        description="Workflow, sampling and engine of rollouts.",
    )
    task_reader: TaskReaderConfig = Field(default_factory=TaskReaderConfig, description="Where tasks come from.")
    task_judge: TaskJudgeConfig = Field(default_factory=TaskJudgeConfig, description="How rollouts are scored.")
    python_tool: PythonToolConfig = Field(
        default_factory=PythonToolConfig,
        description="Limits of the sandboxed Python tool.",
    )
    debug: DebugConfig = Field(default_factory=DebugConfig, description="The debug backbone.")
    logview: LogviewConfig = Field(
        default_factory=LogviewConfig,
        description="The log viewer (--with-logview) and the training-curve PNG.",
    )
    local: LocalConfig = Field(default_factory=LocalConfig, description="The local backbone (one-process GRPO).")
    trainer_common: TrainerCommonConfig = Field(
        default_factory=TrainerCommonConfig,
        description="Training-loop settings of the training backbones.",
    )
    context_tracker: ContextTrackerConfig = Field(
        default_factory=ContextTrackerConfig,
        description="Upstream's classic-runner context tracker; accepted for compatibility; not used.",
    )
    execute_test: bool = Field(
        False,
        description="Upstream's robot-test switch; accepted for compatibility; not used.",
    )
    execute_testing_lambda: str = Field(
        "",
        description=(
            "Upstream's robot-test probe (`module->function`); accepted for compatibility; not used."
        ),
    )


class Config(StrictModel):
    """A whole astuner config file: the ``astuner`` settings plus a free ``trinity`` block."""

    astuner: AstunerConfig = Field(default_factory=AstunerConfig, description="astuner's own settings.")
    trinity: dict[str, Any] = Field(
        default_factory=dict,
        description=(
            "Trinity-RFT config for the trinity backbone, merged key by key over the values astuner computes (your "
            "keys win; docs/trinity.md); saved in yaml_backup.yaml; the other backbones ignore it."
        ),
    )
