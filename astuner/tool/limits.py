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
import dataclasses
import math
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from astuner.config.schema import PythonToolConfig

ISOLATION_LEVELS = ("auto", "process", "bwrap")


@dataclass(frozen=True)
class ToolLimits:
    """How far one ``execute_python_code`` call may go, and which sandbox runs it.

    ``timeout_s`` is the wall-clock cap (the model may ask for less, never more);
    ``max_output_chars`` caps stdout and stderr separately (head and tail are kept);
    ``memory_mb`` is the address-space limit of the code's processes; ``isolation`` picks the
    sandbox (``"bwrap"``: bubblewrap namespaces; ``"process"``: the fallback; ``"auto"``: bwrap
    when it works here, else the fallback with a warning; see ``sandbox.py``).
    ``max_processes`` is how many processes (threads count) the code may add to its own;
    ``max_file_mb`` the largest file it may write; ``max_open_files`` its descriptor limit;
    ``scratch_mb`` the size of the private writable ``/tmp`` that holds its scratch dir.
    ``pool_size`` is how many sandboxes are kept started ahead of calls; it is process-wide (the
    pool follows the most recent call's value) and 0 starts each sandbox on demand.
    """

    timeout_s: float = 10.0
    max_output_chars: int = 8192
    memory_mb: int = 1024
    isolation: str = "auto"
    max_processes: int = 64
    max_file_mb: int = 64
    max_open_files: int = 256
    scratch_mb: int = 256
    pool_size: int = 4

    def __post_init__(self) -> None:
        if not (isinstance(self.timeout_s, (int, float)) and math.isfinite(self.timeout_s) and self.timeout_s > 0):
            raise ValueError(f"python_tool.timeout_s must be a positive number, got {self.timeout_s!r}")
        for name in ("max_output_chars", "memory_mb", "max_processes", "max_file_mb", "max_open_files", "scratch_mb"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"python_tool.{name} must be a positive integer, got {value!r}")
        if not isinstance(self.pool_size, int) or isinstance(self.pool_size, bool) or self.pool_size < 0:
            raise ValueError(f"python_tool.pool_size must be a non-negative integer, got {self.pool_size!r}")
        if self.isolation not in ISOLATION_LEVELS:
            raise ValueError(
                f"python_tool.isolation must be one of {', '.join(ISOLATION_LEVELS)}; got {self.isolation!r}"
            )

    @classmethod
    def from_config(cls, block: PythonToolConfig) -> ToolLimits:
        """The limits the ``astuner.python_tool`` block sets (it has a field for each of ours)."""
        return cls(**{f.name: getattr(block, f.name) for f in dataclasses.fields(cls)})


def rlimits(limits: ToolLimits, timeout_s: float) -> dict[str, int]:
    """The soft limits the program's process sets on itself, by ``resource`` constant name.

    ``RLIMIT_CPU`` is one second above the wall-clock timeout (the wall clock normally acts
    first; the worker sets the hard limit one more second up, so SIGXCPU comes before SIGKILL).
    ``RLIMIT_NPROC`` here is the allowance on top of the sandbox's own processes; the worker adds
    that base (or, where the count is user-wide, the user's current task count).
    """
    mib = 1024 * 1024
    return {
        "RLIMIT_AS": limits.memory_mb * mib,
        "RLIMIT_CPU": math.ceil(timeout_s) + 1,
        "RLIMIT_FSIZE": limits.max_file_mb * mib,
        "RLIMIT_NOFILE": limits.max_open_files,
        "RLIMIT_NPROC": limits.max_processes,
        "RLIMIT_CORE": 0,
    }


def require_supported(limits: ToolLimits) -> None:
    """Fail early for ``isolation="bwrap"`` on a machine without the ``bwrap`` binary.

    Only the binary's presence is checked here; whether the kernel lets it build a sandbox is
    found out by the first sandbox started (an error then names the reason).
    """
    if limits.isolation == "bwrap" and shutil.which("bwrap") is None:
        raise RuntimeError(
            "python_tool.isolation='bwrap' but the bwrap (bubblewrap) binary is not on PATH; install "
            "it (apt-get install bubblewrap) or use isolation 'auto' or 'process'"
        )


_LIMITS: contextvars.ContextVar[ToolLimits] = contextvars.ContextVar("astuner_python_tool_limits", default=ToolLimits())


def current_limits() -> ToolLimits:
    """The limits in force for the current rollout (the defaults outside any ``use_limits``)."""
    return _LIMITS.get()


@contextmanager
def use_limits(limits: ToolLimits) -> Iterator[ToolLimits]:
    """Make ``limits`` current inside the block; restores the previous value on exit.

    Fails at once for an isolation level this machine cannot provide, so a misconfigured run
    stops at its first rollout instead of showing the model an error text on every tool call.
    """
    require_supported(limits)
    token = _LIMITS.set(limits)
    try:
        yield limits
    finally:
        _LIMITS.reset(token)
