"""Upstream keys this version of astuner does not implement: accepted only at upstream's default.

Upstream's ``astune_default.yaml`` and ``verl_default`` define keys for features astuner does not
have (task generation, a rubric auto-grader, verl's FSDP trainer, ...). They are not in the schema,
so no code can read them by mistake. A file may still name one with upstream's default value (an
upstream default file keeps loading, and means exactly what astuner does); any other value is the
one-line error ``<key> is not supported by this version of astuner``, raised by the loader before
anything is created. ``docs/config.md`` lists every entry (generated from this table).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

NOT_SUPPORTED = "is not supported by this version of astuner"


@dataclass(frozen=True)
class RejectedKey:
    """One unsupported key (or block): the only value accepted, and what it did upstream."""

    accepted: Any
    upstream: str


_RUBRIC_FILES = {"training": {"file_path": "tutorial/example_rm_auto_grader/rubrics_train.jsonl"},
                 "validation": {"file_path": ""}}
_QUERY_FILES = {"training": {"file_path": "dataset/jsonl/your-queries.jsonl"}, "validation": {"file_path": ""}}

REJECTED_KEYS: dict[str, RejectedKey] = {
    "execute_test": RejectedKey(False, "upstream's robot-test switch"),
    "execute_testing_lambda": RejectedKey("", "upstream's robot-test probe (`module->function`)"),
    "context_tracker": RejectedKey(
        {"context_tracker_type": "linear", "alien_llm_model": "qwen3-235b-a22b-instruct-2507",
         "alien_llm_response_length": 512, "max_env_len": 4096},
        "the context tracker of upstream's classic (non-AgentScope) runner; astuner has no classic runner "
        "(the LLM judge's helper model is task_judge.alien_llm_*)",
    ),
    "debug.debug_vllm_port": RejectedKey(
        18000, "port of upstream's debug vLLM server; the debug backbone generates with rollout.engine"
    ),
    "debug.debug_vllm_seed": RejectedKey(12345, "seed of upstream's debug vLLM server; sampling is seeded from astuner.seed"),
    "debug.debug_tensor_parallel_size": RejectedKey(
        4, "tensor-parallel size of upstream's debug vLLM server; see rollout.engine.vllm.tensor_parallel_size"
    ),
    "rollout.use_agentscope_protocol": RejectedKey(
        True, "seed-era switch off the AgentScope path; astuner always runs the workflow through AgentScope"
    ),
    "rollout.agentscope_disable_toolcalls": RejectedKey(
        False, "drop tools from prompts and skip tool-call parsing; astuner always renders tools and parses calls"
    ),
    "rollout.gamma": RejectedKey(1.0, "step-reward discount; rewards are per rollout, so nothing is discounted"),
    "rollout.agent_madness_termination": RejectedKey(
        True,
        "stop recording a rollout's LLM calls once a madness check flags it; astuner keeps every call and gives the "
        "flagged rollout rollout.agent_madness_reward",
    ),
    "rollout.name": RejectedKey("vllm", "upstream's inference-server dialect; astuner picks engines with rollout.engine.type"),
    "rollout.step_skip_action": RejectedKey(0, "verl_default: skip action generation every N steps"),
    "rollout.submit_oversample_multiplier": RejectedKey(1.5, "verl_default: oversampling factor of dynamic rollout"),
    "rollout.enable_oversample": RejectedKey(False, "verl_default: dynamic oversampled rollout"),
    "rollout.multi_turn.max_steps": RejectedKey(
        30, "step limit of upstream's classic runner; a workflow limits its own turns (e.g. ReActAgent max_iters)"
    ),
    "rollout.val_kwargs.do_sample": RejectedKey(
        False, "verl's sampling switch; validation sampling is rollout.val_kwargs.temperature (0 = greedy)"
    ),
    "task_reader.env_service.env_action_preference": RejectedKey(
        "code", "action format upstream's environments expect; astuner sends the workflow's actions as they are"
    ),
    "task_reader.data_generation": RejectedKey(
        {"document_reader": {"document_path": ["dataset/document/your-document1.pdf",
                                               "dataset/document/your-document2.pdf"],
                             "languages": ["eng"]},
         "query_reader": {"type": "dataset_file", "dataset_file": _QUERY_FILES},
         "task_num": 10, "llm_model": "qwen-long", "llm_response_length": 8192, "num_workers": 32,
         "sampling_params": {"temperature": 0.0},
         "filter": {"type": "deduplication", "enabled": True,
                    "params": {"similarity_threshold": 0.8, "db_path": "./.similarity_db", "model": "text-embedding-v4",
                               "api_key": None, "base_url": "https://dashscope.aliyuncs.com/compatible-mode/v1"}}},
        "upstream's LLM task generation (task_reader.type data_generation); not implemented",
    ),
    "task_judge.judge_type": RejectedKey(
        "customized_protocol", "judge family; task_judge.judge_protocol always runs (rubrics_auto_grader is not implemented)"
    ),
    "task_judge.rubrics_auto_grader": RejectedKey(
        {"model_name": "qwen-max", "grader_mode": "pointwise", "language": "en", "query_specific_generate_number": 1,
         "enable_categorization": False, "categories_number": 5, "grader_name": "auto_grader",
         "query_field": "main_query", "answer_field": "final_answer", "reference_field": "answer",
         "custom_evaluation_prompt": None, "input_data_type": "dataset_file", "dataset_file": _RUBRIC_FILES,
         "min_score": 0, "max_score": 1},
        "upstream's rubric-generating auto grader (judge_type rubrics_auto_grader); not implemented",
    ),
    "trainer_common.val_pass_n": RejectedKey(
        4, "n of upstream's pass@n validation metric; the local backbone reports the success rate over "
        "rollout.val_kwargs.num_repeat rollouts per task",
    ),
    "trainer_common.algorithm": RejectedKey(
        {"task_norm_patch": False, "adv_estimator": "grpo", "use_kl_in_reward": False},
        "verl's advantage settings; astuner always computes GRPO advantages and puts the KL term in the loss "
        "(trainer_common.use_kl_loss)",
    ),
    "trainer_common.fsdp_config": RejectedKey(
        {"param_offload": True, "optimizer_offload": True},
        "verl's FSDP offloading; the local backbone does not shard, and Trinity's trainer takes its settings from "
        "the trinity: block",
    ),
}
"""Key path below ``astuner`` -> the only value it accepts (a block: a mapping of them) and what it was."""

REJECTED_VALUES: dict[str, dict[str, str]] = {
    "task_reader.type": {"data_generation": "upstream's LLM task generation; not implemented"},
}
"""Key path -> {value this version does not implement: what it was upstream}."""


@dataclass(frozen=True)
class UnsupportedSetting:
    """Where a file sets an unsupported key to another value (``value`` set: an unsupported value)."""

    path: tuple[str, ...]
    value: Any = None

    def message(self) -> str:
        """The error after the key path: ``is not supported ...``, or ``'v' is not supported ...``."""
        return NOT_SUPPORTED if self.value is None else f"{self.value!r} {NOT_SUPPORTED}"


def drop_unsupported(astuner: dict[str, Any]) -> UnsupportedSetting | None:
    """Remove every unsupported key from the raw ``astuner`` mapping (blocks already mappings, old names
    already current); return the first one set to something other than its accepted value, else None."""
    for key, rejected in REJECTED_KEYS.items():
        *parents, leaf = key.split(".")
        block = _block(astuner, parents)
        if block is None or leaf not in block:
            continue
        found = _first_difference(block.pop(leaf), rejected.accepted, (*parents, leaf))
        if found is not None:
            return UnsupportedSetting(found)
    for key, values in REJECTED_VALUES.items():
        *parents, leaf = key.split(".")
        block = _block(astuner, parents)
        value = None if block is None else block.get(leaf)
        if isinstance(value, str) and value in values:
            return UnsupportedSetting(tuple(key.split(".")), value)
    return None


def is_unsupported(key: str) -> bool:
    """Whether ``key`` (a path below ``astuner``) is, or lies inside, an unsupported key."""
    return any(key == k or key.startswith(k + ".") for k in REJECTED_KEYS)


def leaves(path: str, value: Any) -> Iterator[tuple[str, Any]]:
    """(key path, value) of every plain key in ``value`` (a block's accepted mapping), below ``path``."""
    if isinstance(value, dict):
        for key, child in value.items():
            yield from leaves(f"{path}.{key}", child)
    else:
        yield path, value


def rejected_leaves() -> Iterator[str]:
    """The path (below ``astuner``) of every unsupported plain key, blocks flattened."""
    for key, rejected in REJECTED_KEYS.items():
        yield from (path for path, _ in leaves(key, rejected.accepted))


def _block(data: dict[str, Any], parents: list[str]) -> dict[str, Any] | None:
    """The mapping at ``parents`` below ``data``, or None where the file does not have it."""
    for part in parents:
        data = data.get(part) if isinstance(data, dict) else None
    return data if isinstance(data, dict) else None


def _first_difference(value: Any, accepted: Any, path: tuple[str, ...]) -> tuple[str, ...] | None:
    """The path of the first setting in ``value`` that differs from ``accepted`` (an empty block is accepted)."""
    if isinstance(accepted, dict):
        if value is None:
            return None
        if not isinstance(value, dict):
            return path
        for key, child in value.items():
            if key not in accepted:
                return (*path, str(key))
            found = _first_difference(child, accepted[key], (*path, str(key)))
            if found is not None:
                return found
        return None
    same = isinstance(value, bool) == isinstance(accepted, bool) and value == accepted
    return None if same else path
