"""Tools for agents under training: a sandboxed ``execute_python_code`` and its limits."""

from astuner.tool.limits import ToolLimits, current_limits, use_limits
from astuner.tool.python_tool import execute_python_code

__all__ = ["ToolLimits", "current_limits", "execute_python_code", "use_limits"]
