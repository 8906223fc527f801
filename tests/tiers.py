"""Test tiers and their deadlines (a pytest plugin, loaded by ``conftest.py``).

Every test belongs to exactly one tier, set by a module-level ``pytestmark`` (or a marker on the
test); a test that names none is ``unit``:

| tier | what | default deadline |
|---|---|---|
| ``unit`` | seconds, in-process: no subprocesses, servers, sandboxes or browsers | 60 s |
| ``integration`` | real agentscope runs, trinity-rft, Ray, bubblewrap, Chromium, the CLI as a child process, on CPU | 300 s |
| ``slow`` | the CPU learning miniature (``tests/experiments/test_tool_discipline_e2e.py``; its run starts at collection, beside the other tiers: ``tests/miniature.py``) | its own marker |
| ``gpu`` | needs a CUDA GPU; skipped (with the reason) everywhere else, CI included | 600 s |

Pick one with ``python -m pytest -m unit`` (or ``"unit or integration"``, ...); plain
``python -m pytest`` runs every tier, fastest first, which is what CI runs. The deadline is a
``pytest.mark.timeout`` (pytest-timeout) added to every test that sets none itself, so a hung test
fails with its stack instead of eating CI's time. At the end a line gives each tier's test count
and summed duration (setup, call and teardown), the per-tier timing ``.ci/run`` reports.
"""

from __future__ import annotations

import time

import pytest

TIERS = {"unit": 60, "integration": 300, "slow": 1800, "gpu": 600}
"""Tier name -> default deadline in seconds, in the order the tiers run."""

_durations: dict[str, dict[str, float]] = {}
"""Tier -> test node id -> seconds (setup + call + teardown)."""


def tier_of(item: pytest.Item) -> str:
    """The tier a test is marked with; ``unit`` when it names none. Two tiers is an error."""
    named = [name for name in TIERS if item.get_closest_marker(name) is not None]
    if len(named) > 1:
        raise pytest.UsageError(f"{item.nodeid}: marked with several tiers {named}; use one")
    return named[0] if named else "unit"


def pytest_configure(config: pytest.Config) -> None:
    for name, deadline in TIERS.items():
        config.addinivalue_line("markers", f"{name}: test tier '{name}' (default deadline {deadline} s; tests/tiers.py)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    order = list(TIERS)
    for item in items:
        tier = tier_of(item)
        if tier == "unit" and item.get_closest_marker("unit") is None:
            item.add_marker(pytest.mark.unit)
        if item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(TIERS[tier]))
        if tier == "gpu":
            import torch

            if not torch.cuda.is_available():
                item.add_marker(pytest.mark.skip(reason="gpu tier: needs a CUDA GPU"))
    items.sort(key=lambda item: order.index(tier_of(item)))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    tier = next((t for t in TIERS if t in report.keywords), "unit")
    tests = _durations.setdefault(tier, {})
    tests[report.nodeid] = tests.get(report.nodeid, 0.0) + report.duration


_started = time.monotonic()


def pytest_terminal_summary(terminalreporter) -> None:
    if not _durations:
        return
    parts = []
    for tier in TIERS:
        if tier in _durations:
            parts.append(f"{tier} {sum(_durations[tier].values()):.0f} s ({len(_durations[tier])} tests)")
    terminalreporter.write_line("tiers: " + ", ".join(parts) + f"; wall {time.monotonic() - _started:.0f} s")
