"""Every key the schema accepts is read by astuner, or is a listed compatibility key (issue 18).

A key a user can set must either act or be refused. This is a static check over the source under
``astuner/`` outside ``astuner/config`` (which defines and validates keys but acts on none): a key
counts as read where its name appears as an attribute access (``.num_repeat``), as a string (a
``getattr``, a dict key, a field-name tuple), or as a dotted path ending in it
(``"task_judge.alien_llm_model"``). Names are matched, not data flow, so a key passes when another
key of the same name is read; what it catches is a key nothing mentions, the way some sixty dead
keys once sat in the schema. Keys that are neither read nor compatibility keys belong in
``astuner.config.unsupported``, outside the schema.
"""

from __future__ import annotations

import ast
import typing
from functools import cache

from astuner.config import compat
from astuner.config.base import child_block, iter_schema
from astuner.config.schema import AstunerConfig, AuxiliaryModelConfig, Config
from astuner.config.unsupported import REJECTED_KEYS, REJECTED_VALUES, rejected_leaves
from tests.conftest import REPO

SOURCE = REPO / "astuner"
CONFIG_PACKAGE = SOURCE / "config"


@cache
def names_in_source() -> tuple[frozenset[str], frozenset[str]]:
    """(attribute names accessed, string constants) over every module under astuner/ but astuner/config."""
    attributes: set[str] = set()
    strings: set[str] = set()
    for path in sorted(SOURCE.rglob("*.py")):
        if CONFIG_PACKAGE in path.parents:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Attribute):
                attributes.add(node.attr)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                strings.add(node.value)
    return frozenset(attributes), frozenset(strings)


def is_read(path: str) -> bool:
    """Whether the key at ``path`` (``astuner.rollout.num_repeat``) is mentioned by code under astuner/."""
    attributes, strings = names_in_source()
    parts = path.split(".")
    leaf = parts[-1]
    dotted = {".".join(parts[i:]) for i in range(len(parts) - 1)}
    return leaf in attributes or leaf in strings or bool(dotted & strings)


def schema_leaves() -> list[str]:
    """Every plain key, including the keys of each ``rollout.auxiliary_models`` entry (a mapping of blocks)."""
    leaves = [e.path for e in iter_schema(Config()) if not e.is_block]
    return leaves + [f"astuner.rollout.auxiliary_models.<name>.{key}" for key in AuxiliaryModelConfig.model_fields]


def compat_keys() -> set[str]:
    return {f"astuner.{key}" for key in compat.CHECKED_ONLY}


def test_every_schema_key_is_read_or_a_compatibility_key():
    unread = [path for path in schema_leaves() if not is_read(path) and path not in compat_keys()]
    assert unread == [], (
        "keys nothing under astuner/ reads: wire them, list them in astuner/config/compat.py (seed-tutorial keys), "
        f"or move them to astuner/config/unsupported.py: {unread}"
    )


def test_the_check_reports_a_key_nothing_reads():
    assert not is_read("astuner.rollout.zz_setting_no_code_mentions")
    assert is_read("astuner.rollout.num_repeat")
    assert is_read("astuner.task_judge.alien_llm_model")  # read as config_value("task_judge.alien_llm_model")


def test_compatibility_keys_are_schema_keys_whose_doc_says_what_they_map_to():
    docs = {e.path: e.doc for e in iter_schema(Config())}
    for key, maps_to in compat.CHECKED_ONLY.items():
        assert f"astuner.{key}" in docs, key
        assert maps_to in docs[f"astuner.{key}"], key
    for block, renames in compat.RENAMED_KEYS.items():
        model = AstunerConfig
        for part in block.split("."):
            model = child_block(model, part)
        assert model is not None and model.renamed_keys == renames, block
        for old, new in renames.items():
            assert new in model.model_fields and old not in model.model_fields, (block, old)
    for key, aliases in compat.VALUE_ALIASES.items():
        *parents, leaf = key.split(".")
        model = AstunerConfig
        for part in parents:
            model = child_block(model, part)
        allowed = typing.get_args(model.model_fields[leaf].annotation)
        assert all(old in allowed and new in allowed for old, new in aliases.items()), key


def test_unsupported_keys_and_values_are_not_in_the_schema():
    paths = {e.path for e in iter_schema(Config())}
    for key in [*REJECTED_KEYS, *rejected_leaves()]:
        assert f"astuner.{key}" not in paths, key
    for key, values in REJECTED_VALUES.items():
        *parents, leaf = key.split(".")
        model = AstunerConfig
        for part in parents:
            model = child_block(model, part)
        assert not set(values) & set(typing.get_args(model.model_fields[leaf].annotation)), key


def test_compatibility_and_unsupported_keys_do_not_overlap():
    rejected = set(REJECTED_KEYS) | set(rejected_leaves())
    assert not {k for k in compat.compat_paths() if k in rejected}


def test_no_schema_doc_calls_its_key_unused():
    for entry in iter_schema(Config()):
        doc = entry.doc.lower()
        assert not any(words in doc for words in ("accepted for compatibility", "; not used", "not used yet")), entry.path


def test_every_module_of_the_config_package_is_under_400_lines():
    for path in sorted(CONFIG_PACKAGE.glob("*.py")):
        lines = len(path.read_text(encoding="utf-8").splitlines())
        assert lines < 400, f"{path.relative_to(REPO)}: {lines} lines"


def test_schema_py_re_exports_every_block_class():
    import astuner.config.schema as schema

    blocks = {type(e.default) for e in iter_schema(Config()) if e.is_block} | {Config, AuxiliaryModelConfig}
    missing = sorted(cls.__name__ for cls in blocks if getattr(schema, cls.__name__, None) is not cls)
    assert missing == []
    assert set(schema.__all__) >= {cls.__name__ for cls in blocks}

