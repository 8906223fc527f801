"""astuner's ``execute_python_code``: a drop-in for AgentScope's, run in the sandbox with limits.

Why a replacement: AgentScope's tool inherits the whole environment (secrets included), runs in
the agent's working directory, blocks on large output and does not kill descendants on timeout
(see docs/research). Workflows register this function instead; the JSON schema the ``Toolkit``
builds from the signature and docstring has the same parameters (``code``, ``timeout``) and the
result text has the same shape, ``<returncode>N</returncode><stdout>...</stdout><stderr>...</stderr>``
in one TextBlock, so prompts and parsers written for AgentScope's tool keep working.

Differences a model can notice: the timeout is ``min(requested, limits.timeout_s)`` (a model can
lower it, never raise it); ``code`` that is not a string is refused with an ``Error:`` text and
nothing runs (running ``str(code)`` would be a silent repair the model never learns from); extra
keyword arguments are ignored (the turn still counts as ``invalid_tool_call``); output is capped;
marker lines starting with ``astuner:`` or ``TimeoutError:`` may be appended to stderr. What the
sandbox does and does not protect against is in ``astuner/tool/sandbox.py``.
"""

from __future__ import annotations

import math
from typing import Any

from agentscope.message import TextBlock
from agentscope.tool import ToolResponse

from astuner.tool.limits import current_limits
from astuner.tool.run import run_python


NOT_SOURCE = "Error: the argument `code` must be a string of Python source, not {kind}; nothing was run."


def effective_timeout(requested: Any, limit_s: float) -> float:
    """The timeout actually used: the model's value when it is a positive finite number below the
    configured limit, else the limit."""
    try:
        value = float(requested)
    except (TypeError, ValueError):
        return limit_s
    if not math.isfinite(value) or value <= 0:
        return limit_s
    return min(value, limit_s)


def format_result(returncode: int, stdout: str, stderr: str) -> str:
    """AgentScope's result text: the three tags concatenated with no separators."""
    return f"<returncode>{returncode}</returncode><stdout>{stdout}</stdout><stderr>{stderr}</stderr>"


def _append_line(text: str, line: str) -> str:
    """``line`` on a line of its own after ``text``."""
    if not text or text.endswith("\n"):
        return text + line
    return f"{text}\n{line}"


async def execute_python_code(
    code: str,
    timeout: float = 300,
    **kwargs: Any,
) -> ToolResponse:
    """Run a Python script and report its exit code, standard output and
    standard error. Only what the code prints appears in the output, so
    `print` every value you need; the script file is deleted after the run.

    Args:
        code (`str`):
            The Python code to run.
        timeout (`float`, defaults to `300`):
            The longest time in seconds the code may run.

    Returns:
        `ToolResponse`:
            One text block holding the exit code, standard output and
            standard error of the run.
    """
    if not isinstance(code, str):
        return ToolResponse(content=[TextBlock(type="text", text=NOT_SOURCE.format(kind=type(code).__name__))])
    limits = current_limits()
    result = await run_python(code, effective_timeout(timeout, limits.timeout_s), limits)
    stderr = result.stderr
    for note in result.notes:
        stderr = _append_line(stderr, note)
    return ToolResponse(
        content=[TextBlock(type="text", text=format_result(result.returncode, result.stdout, stderr))],
    )
