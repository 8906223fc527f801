"""Reading and writing config YAML.

PyYAML's safe loader has two habits that hurt configs: a repeated key silently replaces the
first (two ``rollout:`` blocks lose the first one entirely), and ``1e-6`` without a dot is read as
a string (YAML 1.1), which would reach Trinity unconverted through the ``trinity:`` passthrough.
This loader refuses the first and reads the second as a float.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from astuner.config.errors import ConfigError

_FLOAT = re.compile(r"^[-+]?(?:\d[\d_]*)?(?:\.\d*)?[eE][-+]?\d+$")


class _ConfigLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys and reads exponent floats without a dot."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, str | int | float | bool):
                continue
            if key in seen:
                problem = f"duplicate key '{key}' (the later one would silently replace the earlier)"
                raise yaml.constructor.ConstructorError(None, None, problem, key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


_ConfigLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))


def parse_yaml(text: str, source: str) -> Any:
    """Parse YAML text; syntax errors become a ConfigError naming the line and column."""
    try:
        return yaml.load(text, Loader=_ConfigLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = exc.problem or exc.context or "syntax error"
        raise ConfigError(source, None, f"{where}invalid YAML: {problem}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(source, None, f"invalid YAML: {exc}") from None


def read_yaml(path: Path, source: str) -> Any:
    """Read and parse one YAML file; every failure is a one-line ConfigError."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(source, None, "file not found") from None
    except IsADirectoryError:
        raise ConfigError(source, None, "is a directory, not a YAML file") from None
    except UnicodeDecodeError:
        raise ConfigError(source, None, "is not UTF-8 text") from None
    except OSError as exc:
        raise ConfigError(source, None, f"cannot be read ({exc.strerror or exc})") from None
    return parse_yaml(text, source)


def parse_scalar(text: str) -> Any:
    """An override value: YAML-typed (``6`` -> int, ``true`` -> bool, ``[a, b]`` -> list), else the raw text."""
    if not text.strip():
        return ""
    try:
        return yaml.load(text, Loader=_ConfigLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError:
        return text


def dump_yaml(data: Any) -> str:
    """Block-style YAML in the given key order, readable by ``read_yaml``."""
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=False, width=1_000_000)
