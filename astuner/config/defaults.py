"""The packaged ``default.yaml``: the schema's defaults written out as commented YAML.

The schema is the single source of the defaults; this file exists so a user can read (or copy)
every key with its doc in one place. A test compares it with ``dump_defaults()`` so the two cannot
drift. Regenerate with ``python -m astuner.config.defaults > astuner/config/default.yaml``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

from astuner.config.base import iter_schema
from astuner.config.schema import Config

DEFAULT_YAML = Path(__file__).with_name("default.yaml")

_HEADER = """\
# astuner's defaults: every key, its default and what it does.
# Generated from astuner/config/schema*.py by
#   python -m astuner.config.defaults > astuner/config/default.yaml
# Do not edit by hand. A config file only needs the keys it changes.
"""


def flow(value: Any) -> str:
    """One value as inline YAML (``[nonsense]``, ``'x: y'``, ``null``), exactly as a loader reads it back."""
    return yaml.safe_dump([value], default_flow_style=True, width=1_000_000, allow_unicode=True).strip()[1:-1]


def dump_defaults() -> str:
    """Every key of a default ``Config`` as block YAML, each preceded by its one-line doc."""
    lines = [_HEADER]
    for entry in iter_schema(Config()):
        indent = "  " * entry.path.count(".")
        key = entry.path.rsplit(".", 1)[-1]
        lines.append(f"{indent}# {entry.doc}")
        lines.append(f"{indent}{key}:" if entry.is_block else f"{indent}{key}: {flow(entry.default)}")
    return "\n".join(lines) + "\n"


def main() -> int:
    """Print the defaults file to stdout."""
    sys.stdout.write(dump_defaults())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
