"""Every seed-era spelling astuner accepts on purpose, and what each one maps to.

Seed-era configs (the spec ``shared/seed/math_agent.md`` and the YAML under ``tutorial/``) must keep
loading, so a few old names and one key that does not act are accepted. They are all listed here,
each with what it becomes, so that nothing is accepted silently by accident: the loader, the schema
(old key names, old values) and the reference docs read these tables. Upstream keys that astuner
does not implement are not compatibility keys: ``astuner.config.unsupported`` rejects them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

ROOT_ALIASES: dict[str, str] = {
    "astune": "astuner: the same settings under the seed-era root key; errors name the root the file used",
}
"""Old root key -> what it maps to."""

IGNORED_TOP_LEVEL: dict[str, str] = {
    "hydra": "ignored: upstream's Hydra search path; astuner merges a file over its own schema defaults",
    "defaults": "ignored: upstream's Hydra defaults list; astuner merges a file over its own schema defaults",
}
"""Top-level keys every upstream file carries that mean nothing here -> why they are ignored."""

RENAMED_KEYS: dict[str, dict[str, str]] = {
    "rollout": {"agentscope_learn_protocol": "agentscope_workflow"},
    "task_reader": {"dataset_file": "jsonl_dataset_file"},
}
"""Block path (below ``astuner``) -> {old key name: current key name}; the old name is moved onto the
current one before validation, and only the current name is ever written back."""

VALUE_ALIASES: dict[str, dict[str, str]] = {
    "task_reader.type": {"dataset_file": "jsonl_dataset_file"},
}
"""Key path -> {old value: current value}; the seed's docs still say ``type: dataset_file``."""

CHECKED_ONLY: dict[str, str] = {
    "data.max_prompt_length": (
        "only checked when the config loads (data.max_prompt_length + data.max_response_length must fit "
        "rollout.max_model_len); prompts are not cut to it, and the trinity backbone lets Trinity derive its "
        "own prompt limit"
    ),
    "rollout.max_num_seqs": (
        "ignored: upstream's tutorial YAML sets it but upstream never read it either (its vLLM server took the "
        "limit from verl's config); astuner's vLLM server reads rollout.engine.vllm.max_num_seqs"
    ),
}
"""Key path -> what it does: keys the seed's tutorial sets that no backbone acts on. Each stays in the
schema so seed configs load; a non-default value gives one note when a run starts."""


def renamed_keys(block: str) -> dict[str, str]:
    """The old key names of the block at ``block`` (a path below ``astuner``), for ``StrictModel.renamed_keys``."""
    return dict(RENAMED_KEYS.get(block, {}))


def value_alias(key: str, value: Any) -> Any:
    """``value`` of the key at ``key`` in its current spelling (old values mapped, others as given)."""
    aliases = VALUE_ALIASES.get(key, {})
    return aliases.get(value, value) if isinstance(value, str) else value


def doc(key: str) -> str:
    """The schema description of a checked-only key: what it maps to, and that it is kept for compatibility."""
    return f"Seed-tutorial key kept for compatibility: {CHECKED_ONLY[key]}."


def compat_paths() -> Iterator[str]:
    """Every compatibility spelling as a dotted path below ``astuner`` (top-level ones without a dot)."""
    yield from ROOT_ALIASES
    yield from IGNORED_TOP_LEVEL
    for block, renames in RENAMED_KEYS.items():
        yield from (f"{block}.{old}" for old in renames)
    yield from CHECKED_ONLY


def checked_only_notes(astuner: Any, defaults: Any) -> list[tuple[tuple[str, ...], str]]:
    """(key path, note) for each checked-only key whose value in ``astuner`` differs from ``defaults``."""
    notes = []
    for key, maps_to in CHECKED_ONLY.items():
        value, default = _get(astuner, key), _get(defaults, key)
        if value != default:
            notes.append((tuple(key.split(".")), f"{value!r} is accepted for compatibility and {maps_to}"))
    return notes


def _get(block: Any, key: str) -> Any:
    for part in key.split("."):
        block = getattr(block, part)
    return block
