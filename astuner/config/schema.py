"""The typed config: the root ``Config`` and the small ``astuner.*`` blocks.

Every key here is read by some backbone or component (``tests/config/test_config_keys_read.py`` checks
it), with upstream's ``astune_default.yaml`` default unless astuner deliberately chose otherwise
(noted in the key's doc). The one seed-tutorial key that does not act is listed in
``astuner.config.compat``; upstream keys astuner does not implement are not here but in
``astuner.config.unsupported``, which accepts them only at upstream's default. The larger blocks
live in the other ``schema_*`` modules and are re-exported here, the one import path for every
block. ``docs/config.md`` and ``astuner/config/default.yaml`` are generated from these classes.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from astuner.config import compat
from astuner.config.base import StrictModel
from astuner.config.schema_auxiliary import AuxiliaryModelConfig
from astuner.config.schema_local import LocalConfig
from astuner.config.schema_rollout import (
    EngineConfig,
    MultiTurnConfig,
    OpenAIEngineConfig,
    RolloutConfig,
    ScriptedEngineConfig,
    TransformersEngineConfig,
    ValKwargsConfig,
    VllmEngineConfig,
)
from astuner.config.schema_task import (
    BadCasePenaltiesConfig,
    EnvServiceConfig,
    FilePathConfig,
    HuggingfaceDatRepoConfig,
    JsonlDatasetFileConfig,
    TaskJudgeConfig,
    TaskReaderConfig,
)
from astuner.config.schema_tool import PythonToolConfig
from astuner.config.schema_trainer import OptimConfig, TrainerCommonConfig

__all__ = [
    "AstunerConfig", "AuxiliaryModelConfig", "BadCasePenaltiesConfig", "Config", "DataConfig", "DebugConfig",
    "EngineConfig", "EnvServiceConfig", "FilePathConfig", "HuggingfaceDatRepoConfig", "JsonlDatasetFileConfig",
    "LocalConfig", "LogviewConfig", "ModelConfig", "MultiTurnConfig", "OpenAIEngineConfig", "OptimConfig",
    "PythonToolConfig", "RolloutConfig", "ScriptedEngineConfig", "TaskJudgeConfig", "TaskReaderConfig",
    "TrainerCommonConfig", "TransformersEngineConfig", "ValKwargsConfig", "VllmEngineConfig",
]


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
        3000, ge=1, description=f"Most prompt tokens of one training sample. {compat.doc('data.max_prompt_length')}"
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
