"""Tools for agents under training: a sandboxed ``execute_python_code`` and its limits.

``shutdown()`` kills the pool of pre-started sandboxes (also done at interpreter exit); a backbone
may call it when a run ends so no idle sandbox outlives the run.
"""

from astuner.tool.limits import ToolLimits, current_limits, use_limits
from astuner.tool.python_tool import execute_python_code
from astuner.tool.run import shutdown

__all__ = ["ToolLimits", "current_limits", "execute_python_code", "shutdown", "use_limits"]
