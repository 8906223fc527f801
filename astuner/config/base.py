"""The base every config block derives from, and a walker over the schema.

Every block forbids unknown keys, so a typo is an error instead of a silently ignored setting
(docs/architecture.md, contract 6). Blocks may declare ``renamed_keys`` (old name -> current name,
taken from ``astuner.config.compat``) so that seed-era YAML keeps loading; the old name is moved
onto the current one before validation, and only the current name is ever dumped.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, model_validator


class StrictModel(BaseModel):
    """A config block: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())

    renamed_keys: ClassVar[dict[str, str]] = {}
    """Old key name -> current key name, accepted on input for compatibility."""

    @model_validator(mode="before")
    @classmethod
    def _apply_renamed_keys(cls, data: Any) -> Any:
        if not cls.renamed_keys or not isinstance(data, dict):
            return data
        return apply_renames(cls, data)


class RenameConflict(ValueError):
    """Both a key and its old name were given with different values."""

    def __init__(self, old: str, new: str) -> None:
        super().__init__(f"both '{new}' and its old name '{old}' are set with different values; keep only '{new}'")
        self.old = old
        self.new = new


def apply_renames(model: type[BaseModel], data: dict) -> dict:
    """Return ``data`` with the old key names of ``model`` moved onto the current names."""
    renames: dict[str, str] = getattr(model, "renamed_keys", {})
    if not any(old in data for old in renames):
        return data
    out = dict(data)
    for old, new in renames.items():
        if old not in out:
            continue
        value = out.pop(old)
        if new in out and out[new] != value:
            raise RenameConflict(old, new)
        out[new] = value
    return out


def block_type(annotation: Any) -> type[BaseModel] | None:
    """The config block class an annotation holds, or None for a plain value."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        blocks = [b for b in map(block_type, typing.get_args(annotation)) if b is not None]
        return blocks[0] if len(blocks) == 1 else None
    return None


def child_block(model: type[BaseModel], key: str) -> type[BaseModel] | None:
    """The block class stored under ``key`` of ``model`` (None if ``key`` is a plain value or unknown)."""
    info = model.model_fields.get(key)
    return None if info is None else block_type(info.annotation)


@dataclass(frozen=True)
class SchemaEntry:
    """One key of the schema, as the docs and the defaults file present it."""

    path: str
    annotation: Any
    default: Any
    doc: str
    is_block: bool


def iter_schema(instance: BaseModel, prefix: str = "") -> Iterator[SchemaEntry]:
    """Yield every key below ``instance`` depth-first, in declaration order, with its current value.

    Walking an instance (not the class) gives the defaults of ``default_factory`` fields for free.
    """
    for name, info in type(instance).model_fields.items():
        path = f"{prefix}.{name}" if prefix else name
        value = getattr(instance, name)
        is_block = isinstance(value, BaseModel)
        yield SchemaEntry(path, info.annotation, value, info.description or "", is_block)
        if is_block:
            yield from iter_schema(value, path)


def type_name(annotation: Any) -> str:
    """A short, readable spelling of a field's type for the reference docs."""
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return " | ".join(repr(a).replace("'", '"') for a in typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        return " | ".join(type_name(a) for a in typing.get_args(annotation))
    if origin is not None:
        args = ", ".join(type_name(a) for a in typing.get_args(annotation))
        return f"{getattr(origin, '__name__', str(origin))}[{args}]"
    if annotation is type(None):
        return "null"
    if annotation is Any:
        return "any"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "mapping"
    return getattr(annotation, "__name__", str(annotation))
