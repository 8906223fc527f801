"""``ConfigError`` and the translation of pydantic's errors into one line a user can act on.

A bad config must exit with one line naming the file and the key path, plus the closest valid key
for a typo (docs/architecture.md, contract 6). Pydantic's own report is multi-line and speaks in its
own terms, so each error kind is reworded here.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ValidationError

from astuner.config.base import child_block


class ConfigError(Exception):
    """A config problem, rendered as ``<file>: <key.path>: <what is wrong>`` on one line."""

    def __init__(self, source: str, key: str | None, message: str) -> None:
        self.source = source
        self.key = key
        self.message = " ".join(message.split())
        super().__init__(str(self))

    def __str__(self) -> str:
        parts = [self.source, self.key, self.message] if self.key else [self.source, self.message]
        return ": ".join(parts)


class UnsupportedKeyError(ConfigError):
    """A key this version does not implement, set to another value than upstream's default; rendered as
    ``<file>: <key.path> is not supported by this version of astuner`` (``astuner.config.unsupported``)."""

    def __str__(self) -> str:
        return f"{self.source}: {self.key} {self.message}"


def closest(word: str, candidates: Iterable[str]) -> str | None:
    """The candidate most similar to ``word`` (difflib), or None if nothing is close."""
    matches = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return matches[0] if matches else None


def unknown_key_message(key: str, candidates: Iterable[str]) -> str:
    """``unknown key (did you mean 'x'?)``; the suggestion is omitted when nothing is close."""
    guess = closest(key, candidates)
    return f"unknown key (did you mean '{guess}'?)" if guess else "unknown key"


def format_path(parts: Sequence[str | int]) -> str:
    """``('astuner', 'rollout', 'checklist', 1)`` -> ``astuner.rollout.checklist[1]``."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def show_value(value: Any) -> str:
    """A short rendering of the offending value, in YAML's words where they differ from Python's."""
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    if value is None:
        return "null (empty)"
    if isinstance(value, bool):
        return "true" if value else "false"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


_EXPECTED = {
    "int_parsing": "an integer",
    "int_type": "an integer",
    "int_from_float": "an integer",
    "float_parsing": "a number",
    "float_type": "a number",
    "bool_parsing": "true or false",
    "bool_type": "true or false",
    "string_type": "a string",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "dict_type": "a mapping",
    "list_type": "a list",
}

_BOUNDS = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<=", "less_than": "<"}


def _block_at(root: type[BaseModel], loc: Sequence[str | int]) -> type[BaseModel] | None:
    """The config block class at ``loc`` below ``root`` (None if ``loc`` leaves the typed schema)."""
    block: type[BaseModel] | None = root
    for part in loc:
        if block is None or not isinstance(part, str):
            return None
        block = child_block(block, part)
    return block


def describe(error: Mapping[str, Any], root: type[BaseModel]) -> str:
    """Reword one pydantic error (without its location)."""
    kind = error["type"]
    value = error.get("input")
    ctx = error.get("ctx") or {}
    if kind == "extra_forbidden":
        parent = _block_at(root, error["loc"][:-1])
        candidates = parent.model_fields if parent is not None else ()
        return unknown_key_message(str(error["loc"][-1]), candidates)
    if kind in _EXPECTED:
        return f"expected {_EXPECTED[kind]}, got {show_value(value)}"
    if kind == "literal_error":
        return f"expected one of {ctx.get('expected', '?')}, got {show_value(value)}"
    if kind in _BOUNDS:
        bound = next(iter(ctx.values()), "?")
        return f"must be {_BOUNDS[kind]} {bound}, got {show_value(value)}"
    if kind == "value_error" and "error" in ctx:
        return str(ctx["error"])
    if kind == "missing":
        return "required key is missing"
    msg = str(error.get("msg", kind))
    return f"{msg[:1].lower()}{msg[1:]}, got {show_value(value)}"


def from_validation_error(
    exc: ValidationError,
    source: str,
    root: type[BaseModel],
    root_name: str = "astuner",
    overrides: Mapping[tuple[str, ...], str] | None = None,
) -> ConfigError:
    """Turn pydantic's report into one ConfigError about its first problem (unknown keys first: a typo
    is the likeliest cause of everything else).

    ``root_name`` replaces the canonical ``astuner`` in key paths so that the path matches what the
    user wrote (``astune.`` in seed-era files). ``overrides`` maps canonical key paths set on the
    command line to the override text, so that an error caused by an override says so.
    """
    errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
    first = errors[0]
    loc = list(first["loc"])
    shown = [root_name, *loc[1:]] if loc and loc[0] == "astuner" else loc
    message = describe(first, root)
    origin = override_for(tuple(str(p) for p in loc), overrides or {})
    if origin:
        message += f" (from override '{origin}')"
    if len(errors) > 1:
        more = len(errors) - 1
        message += f" (and {more} more problem{'s' if more > 1 else ''})"
    return ConfigError(source, format_path(shown) or None, message)


def override_for(loc: tuple[str, ...], overrides: Mapping[tuple[str, ...], str]) -> str | None:
    """The override whose path is the longest prefix of ``loc``, or that lies inside ``loc``."""
    best: tuple[str, ...] | None = None
    for path in overrides:
        related = loc[: len(path)] == path or path[: len(loc)] == loc
        if related and (best is None or len(path) > len(best)):
            best = path
    return overrides[best] if best is not None else None
