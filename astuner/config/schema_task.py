"""The ``astuner.task_reader`` and ``astuner.task_judge`` blocks: where tasks come from, how rollouts are scored.

astuner's defaults point at GSM8K and the exact-match math judge, so the math tutorial needs no
reader or judge keys; upstream defaulted to an AppWorld environment service. Upstream's task
generation and rubric auto-grader are not implemented (``astuner.config.unsupported``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from astuner.config import compat
from astuner.config.base import StrictModel


class FilePathConfig(StrictModel):
    """One split's file."""

    file_path: str = Field(
        "",
        description=(
            "Path of the .jsonl (or .parquet) file, absolute or relative to the config file's folder; read only "
            "where the enclosing block is used (task_reader.jsonl_dataset_file), and then checked before the run starts."
        ),
    )


class JsonlDatasetFileConfig(StrictModel):
    """Tasks from JSONL files, one JSON object per line (type 'jsonl_dataset_file', old name 'dataset_file')."""

    training: FilePathConfig = Field(
        default_factory=lambda: FilePathConfig(file_path="/path/to/training/data.jsonl"),
        description="The training split's file.",
    )
    validation: FilePathConfig = Field(
        default_factory=lambda: FilePathConfig(file_path=""),
        description="The validation split's file ('' = no validation tasks; upstream's default was a placeholder path).",
    )


class EnvServiceConfig(StrictModel):
    """Tasks served by an HTTP environment service such as AppWorld (type 'env_service')."""

    env_type: str = Field(
        "appworld",
        description="Environment name the service hosts; sent with every task-list and create request.",
    )
    env_url: str = Field(
        "http://127.0.0.1:8080",
        description=(
            "Base URL of the environment service (http:// or https://); requests go to <env_url>/<endpoint>, "
            "proxy variables are not used."
        ),
    )
    training_split: str = Field("train", description="Split whose task list is read for training tasks.")
    validation_split: str = Field(
        "dev", description="Split whose task list is read for validation tasks (empty: no validation tasks)."
    )
    timeout_s: float = Field(
        60.0, gt=0.0,
        description=(
            "Seconds to wait for the connection and for each read of one request; raise it for environments whose "
            "steps run long."
        ),
    )
    max_retries: int = Field(
        2, ge=0,
        description=(
            "Retries of a failed request; only where retrying cannot repeat an action: an unreachable service for "
            "every request, a timeout or HTTP 5xx only for task list, evaluate and release."
        ),
    )
    retry_backoff_s: float = Field(
        0.5, ge=0.0, description="Seconds before the first retry of a request; doubled for each further one (at most 10)."
    )


class HuggingfaceDatRepoConfig(StrictModel):
    """Tasks from a Hugging Face dataset (hub id or local directory; type 'huggingface_dat_repo')."""

    dataset_path: str = Field(
        "openai/gsm8k",
        description=(
            "Hub id or local directory of the dataset (e.g. from scripts/download_dataset.py); a relative directory "
            "is looked up from the config file's folder."
        ),
    )
    dataset_name: str | None = Field(
        None,
        description=(
            "The dataset's config name (GSM8K: 'main' or 'socratic'); null or empty: the dataset's own default config, "
            "or, for a dataset with several configs and no default (the GSM8K repository), the first it lists, with a "
            "note (one config's folder such as gsm8k/main has a single config and needs none)."
        ),
    )
    training_split: str = Field("train", description="Split used for training tasks.")
    validation_split: str = Field(
        "test", description="Split used for validation tasks (the debug backbone's default debug_split)."
    )


TaskReaderType = Literal["huggingface_dat_repo", "jsonl_dataset_file", "dataset_file", "env_service", "random_dummy"]
"""Reader kinds; 'dataset_file' is the seed-era spelling of 'jsonl_dataset_file' (``astuner.config.compat``)."""


class TaskReaderConfig(StrictModel):
    """Where training and validation tasks come from."""

    renamed_keys = compat.renamed_keys("task_reader")

    type: TaskReaderType = Field(
        "huggingface_dat_repo",
        description=(
            "Reader kind: huggingface_dat_repo, jsonl_dataset_file (seed-era 'dataset_file' is normalised to it), "
            "env_service or random_dummy."
        ),
    )
    shuffle: bool = Field(
        True, description="Shuffle the task lists with astuner.seed (reproducible order); read by the debug backbone."
    )
    jsonl_dataset_file: JsonlDatasetFileConfig = Field(
        default_factory=JsonlDatasetFileConfig,
        description="JSONL files (type 'jsonl_dataset_file'); old block name: dataset_file.",
    )
    env_service: EnvServiceConfig = Field(
        default_factory=EnvServiceConfig,
        description=(
            "Environment service (type 'env_service'): task lists, and one instance per rollout given to the workflow "
            "as workflow_task.gym_env."
        ),
    )
    huggingface_dat_repo: HuggingfaceDatRepoConfig = Field(
        default_factory=HuggingfaceDatRepoConfig, description="Hugging Face dataset (type 'huggingface_dat_repo')."
    )

    @field_validator("type")
    @classmethod
    def _normalise_type(cls, value: str) -> str:
        """Readers look for one name only; the seed docs still say 'dataset_file'."""
        return compat.value_alias("task_reader.type", value)


class BadCasePenaltiesConfig(StrictModel):
    """Reward penalties for the bad cases the math tutorial names and the malformed turns of
    ``task_judge.turn_problems`` (0 = only count them)."""

    malformed_tool_call: float = Field(
        0.0, ge=0.0,
        description="Subtracted from the judge's reward when a rollout emits an unparsable <tool_call>.",
    )
    empty_tool_stdout: float = Field(
        0.0, ge=0.0,
        description=(
            "Subtracted from the judge's reward when an execute_python_code call of the rollout printed nothing."
        ),
    )
    answer_before_tool_response: float = Field(
        0.0, ge=0.0,
        description=(
            "Subtracted from the judge's reward when a final answer comes in the same turn as a tool call, before "
            "its response."
        ),
    )
    repaired_tool_call: float = Field(
        0.0, ge=0.0,
        description="Subtracted when a tool call ran only after a repair (near-JSON, string arguments, no closing tag).",
    )
    empty_reply: float = Field(0.0, ge=0.0, description="Subtracted when a completion is empty or whitespace only.")
    special_token_in_reply: float = Field(
        0.0, ge=0.0, description="Subtracted when a completion writes a chat-template control token (<|...|>) as text.",
    )
    spoofed_tool_response: float = Field(
        0.0, ge=0.0, description="Subtracted when the assistant writes a <tool_response> tag itself.",
    )
    invalid_tool_call: float = Field(
        0.0, ge=0.0,
        description="Subtracted when a call names a tool not offered or its arguments miss, add or mistype properties.",
    )


class TaskJudgeConfig(StrictModel):
    """How a finished rollout becomes a reward."""

    judge_protocol: str = Field(
        "astuner.task_judge.math_answer_as_judge->MathAnswerAsJudge",
        description=(
            "`module->Class` (or `path/file.py->Class`, relative to the config file's folder) of the judge, built "
            "once at start-up and called for every rollout that set no reward itself; `astune.` paths resolve to "
            "`astuner.`; a `module->function` names an agentscope.tuner-style async judge function (task, "
            "response[, auxiliary_models]) -> JudgeOutput."
        ),
    )
    alien_llm_model: str = Field(
        "qwen3-235b-a22b-instruct-2507", description="MathAnswerAndLlmAsJudge: the helper LLM's model name."
    )
    alien_llm_response_length: int = Field(
        512, ge=1, description="MathAnswerAndLlmAsJudge: most tokens the helper LLM may answer with (max_tokens)."
    )
    alien_llm_base_url: str = Field(
        "https://dashscope.aliyuncs.com/compatible-mode/v1",
        description="MathAnswerAndLlmAsJudge: OpenAI-compatible base URL of the helper LLM.",
    )
    alien_llm_api_key_env: str = Field(
        "DASHSCOPE_API_KEY",
        description=(
            "MathAnswerAndLlmAsJudge: NAME of the environment variable holding the helper LLM's API key (unset: a "
            "rollout that needs the LLM fails)."
        ),
    )
    alien_llm_max_retries: int = Field(
        4, ge=0,
        description=(
            "MathAnswerAndLlmAsJudge: attempts in all at one helper-LLM request (0 counts as 1) before the judge "
            "gives up and the rollout fails."
        ),
    )
    alien_llm_timeout_s: float = Field(
        60.0, gt=0.0, description="MathAnswerAndLlmAsJudge: seconds to wait for one helper-LLM attempt."
    )
    bad_case_penalties: BadCasePenaltiesConfig = Field(
        default_factory=BadCasePenaltiesConfig,
        description="Penalties the rollout runner subtracts from the judge's reward, one per flagged bad case.",
    )
