"""The ``astuner.python_tool`` block: limits and sandbox of ``astuner.tool.execute_python_code``.

A workflow's Python tool runs model-written code, so every limit is explicit and has a safe
default; ``docs/sandbox.md`` says what each isolation mode contains.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from astuner.config.base import StrictModel


class PythonToolConfig(StrictModel):
    """Limits and sandbox of the Python tool (astuner.tool.execute_python_code)."""

    timeout_s: float = Field(
        10.0, gt=0.0,
        description=(
            "execute_python_code: wall-clock limit of one code run, from the moment the program is handed to its "
            "sandbox; every process it started is then killed. The model may ask for less, never more."
        ),
    )
    max_output_chars: int = Field(
        8192, ge=1,
        description=(
            "execute_python_code: stdout and stderr are each cut to this many bytes (head and tail kept, with a note "
            "of how much was cut)."
        ),
    )
    memory_mb: int = Field(
        1024, ge=16, description="execute_python_code: address-space limit (RLIMIT_AS) of each of the code's processes, in MiB."
    )
    isolation: Literal["auto", "bwrap", "process"] = Field(
        "auto",
        description=(
            "execute_python_code sandbox: 'bwrap' = bubblewrap namespaces (no network, read-only host, private /tmp, "
            "own PID namespace; fails if bubblewrap cannot build one); 'process' = the fallback (rlimits, a dedicated "
            "uid when run as root, network and mount namespaces where the kernel allows; host processes visible); "
            "'auto' = bwrap when it works on this machine, else 'process' with a one-time warning naming what is not "
            "protected. Details: astuner/tool/sandbox.py."
        ),
    )
    max_processes: int = Field(
        64, ge=1,
        description=(
            "execute_python_code: processes (threads count) the code may start on top of its own (RLIMIT_NPROC); "
            "enforced for root callers too, through a dedicated uid."
        ),
    )
    max_file_mb: int = Field(
        64, ge=1, description="execute_python_code: largest file the code may write (RLIMIT_FSIZE), in MiB."
    )
    max_open_files: int = Field(
        256, ge=16, description="execute_python_code: open file descriptors per process (RLIMIT_NOFILE)."
    )
    scratch_mb: int = Field(
        256, ge=1,
        description=(
            "execute_python_code: size in MiB of the private tmpfs /tmp (and /var/tmp, /dev/shm) holding the code's "
            "scratch dir; it is RAM, not counted in memory_mb. Without a mount namespace (non-root 'process' "
            "fallback without user namespaces) the scratch dir is on the host's disk and its size is checked every "
            "0.05 s instead (the code is killed once over: a soft cap)."
        ),
    )
    pool_size: int = Field(
        4, ge=0,
        description=(
            "execute_python_code: sandboxes kept started ahead of calls (each serves exactly one program, then is "
            "replaced); process-wide, the most recent call's value wins; 0 starts every sandbox on demand."
        ),
    )
