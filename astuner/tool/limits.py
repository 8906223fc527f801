"""Resource limits for model-written Python code, carried per rollout in a context variable.

Why a context variable: the tool function is registered with AgentScope's ``Toolkit`` by the
user's workflow, so astuner cannot pass limits as arguments (and must not: the model could
override any argument it can see). The rollout runner instead wraps each rollout in
``use_limits(ToolLimits(...))`` built from config ``astuner.python_tool``; asyncio tasks created
inside inherit the value, so concurrent rollouts on one event loop keep their own limits.

Not guaranteed: code that runs the tool outside any ``use_limits`` block gets the defaults below,
and a value set in one thread is not seen by threads started elsewhere.
"""

from __future__ import annotations

import contextvars
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

ISOLATION_LEVELS = ("auto", "process", "bwrap")


@dataclass(frozen=True)
class ToolLimits:
    """How far one ``execute_python_code`` call may go.

    ``timeout_s`` is the wall-clock cap (the model may ask for less, never more);
    ``max_output_chars`` caps stdout and stderr separately (head and tail are kept);
    ``memory_mb`` is the address-space limit of the child; ``isolation`` picks the sandbox:
    ``"auto"`` and ``"process"`` both mean the process-level sandbox of ``sandbox.py``,
    ``"bwrap"`` is reserved for a namespace sandbox that is not implemented yet.
    ``max_processes`` is how many processes the child may add on top of those the user already
    runs, and ``max_file_mb`` the largest file it may write.
    """

    timeout_s: float = 10.0
    max_output_chars: int = 8192
    memory_mb: int = 1024
    isolation: str = "auto"
    max_processes: int = 64
    max_file_mb: int = 64

    def __post_init__(self) -> None:
        if not (isinstance(self.timeout_s, (int, float)) and math.isfinite(self.timeout_s) and self.timeout_s > 0):
            raise ValueError(f"python_tool.timeout_s must be a positive number, got {self.timeout_s!r}")
        for name in ("max_output_chars", "memory_mb", "max_processes", "max_file_mb"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"python_tool.{name} must be a positive integer, got {value!r}")
        if self.isolation not in ISOLATION_LEVELS:
            raise ValueError(
                f"python_tool.isolation must be one of {', '.join(ISOLATION_LEVELS)}; got {self.isolation!r}"
            )


def require_supported(limits: ToolLimits) -> None:
    """Raise NotImplementedError for an isolation level this version cannot provide."""
    if limits.isolation == "bwrap":
        raise NotImplementedError(
            "python_tool.isolation='bwrap' (namespace sandbox: no network, read-only host) is not "
            "implemented yet; use 'auto' or 'process' (process-level limits only, see astuner/tool/sandbox.py)"
        )


_LIMITS: contextvars.ContextVar[ToolLimits] = contextvars.ContextVar("astuner_python_tool_limits", default=ToolLimits())


def current_limits() -> ToolLimits:
    """The limits in force for the current rollout (the defaults outside any ``use_limits``)."""
    return _LIMITS.get()


@contextmanager
def use_limits(limits: ToolLimits) -> Iterator[ToolLimits]:
    """Make ``limits`` current inside the block; restores the previous value on exit.

    Fails at once for an unsupported isolation level, so a misconfigured run stops at its first
    rollout instead of showing the model an error text on every tool call.
    """
    require_supported(limits)
    token = _LIMITS.set(limits)
    try:
        yield limits
    finally:
        _LIMITS.reset(token)
