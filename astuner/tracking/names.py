"""Tracker names: what ``trainer_common.logger`` may say, and whether those trackers are installed.

``trainer_common.logger`` is ``none``, one tracker name, or a list of them (several trackers at
once). ``normalize_logger`` gives the one stored form: ``"none"``, a single name as a string, or a
list of two or more names (order kept, duplicates dropped). ``console`` is accepted and dropped
wherever it appears (seed-era configs say ``[console, swanlab]``): the console always logs.

This module imports no tracker package: ``check_trackers`` asks ``importlib`` whether a package
can be found, so it is cheap enough to run before a run creates anything. Not guaranteed: a
package that is found may still fail to import (a broken install); that shows when the sink is
created.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Sequence

TRACKERS = ("tensorboard", "wandb", "swanlab", "mlflow")
"""The trackers astuner can feed, in the order the docs list them."""

ACCEPTED = ("none", "console", *TRACKERS)
"""Every name ``trainer_common.logger`` accepts (``none`` and ``console`` add no tracker)."""

_PACKAGES: dict[str, tuple[str, ...]] = {
    "tensorboard": ("tensorboard", "tensorboardX"),
    "wandb": ("wandb",),
    "swanlab": ("swanlab",),
    "mlflow": ("mlflow",),
}
"""Tracker -> importable packages, any one of which is enough."""


class TrackerUnavailable(RuntimeError):
    """A configured tracker whose package is not installed."""


def normalize_logger(value: object) -> str | list[str]:
    """The stored form of ``trainer_common.logger``; ``ValueError`` (one line) for anything else.

    ``None``, ``""``, ``"none"``, ``"console"`` and lists of only those give ``"none"``; one tracker
    gives its name; several give a list. Names are case-insensitive.
    """
    if value is None:
        return "none"
    if isinstance(value, str):
        items: Sequence[object] = [value]
    elif isinstance(value, (list, tuple)):
        items = value
    else:
        raise ValueError(f"a tracker name or a list of them, got {type(value).__name__}")
    names: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise ValueError(f"tracker names are strings, got {item!r}")
        name = item.strip().lower() or "none"
        if name not in ACCEPTED:
            raise ValueError(f"unknown tracker {item!r} (choose from {', '.join(ACCEPTED)})")
        if name not in ("none", "console") and name not in names:
            names.append(name)
    if not names:
        return "none"
    return names[0] if len(names) == 1 else names


def tracker_names(value: str | Sequence[str] | None) -> tuple[str, ...]:
    """The trackers a ``trainer_common.logger`` value configures, in order (empty for none)."""
    normalized = normalize_logger(list(value) if isinstance(value, (list, tuple)) else value)
    if normalized == "none":
        return ()
    return (normalized,) if isinstance(normalized, str) else tuple(normalized)


def check_trackers(value: str | Sequence[str] | None) -> None:
    """Raise ``TrackerUnavailable`` (one line, naming the pip package) for the first configured
    tracker whose package cannot be found; imports nothing."""
    for name in tracker_names(value):
        if not any(_findable(package) for package in _PACKAGES[name]):
            raise TrackerUnavailable(
                f"trainer_common.logger: {name!r} needs the {_PACKAGES[name][0]} package "
                f"(pip install {_PACKAGES[name][0]})"
            )


def trinity_monitor(value: str | Sequence[str] | None) -> str:
    """Trinity 0.6.0's ``monitor.monitor_type``: it takes one monitor, so the first configured
    tracker, or ``tensorboard`` when none is (Trinity always writes one)."""
    names = tracker_names(value)
    return names[0] if names else "tensorboard"


def _findable(package: str) -> bool:
    """Importable without importing it: already imported (``None`` there means blocked), or found."""
    if package in sys.modules:
        return sys.modules[package] is not None
    try:
        return importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):
        return False
