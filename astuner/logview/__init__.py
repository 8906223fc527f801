"""The token-level log viewer: a local web page over a run's ``rollouts/*.jsonl`` and ``metrics.jsonl``.

``start_logview(exp_root)`` serves it from a thread of this process (what ``--with-logview`` uses,
through ``logview_for_run``); ``python -m astuner.logview --exp-dir DIR`` browses past runs;
``spawn_logview`` starts that command as a registered background process that ``--kill logview``
can end. See ``docs/logview.md``.
"""

from astuner.logview.process import spawn_logview
from astuner.logview.server import LogviewServer, start_logview
from astuner.logview.session import logview_for_run

__all__ = ["LogviewServer", "logview_for_run", "spawn_logview", "start_logview"]
