"""The viewer for the length of one run: what the CLI wraps a run in for ``--with-logview``.

The viewer serves the run's ``--exp-dir`` (so earlier runs are a click away) and the printed URL
opens this run. It runs as a daemon thread of the run's own process, so it needs no entry in the
process registry: it ends when the run's process ends, whatever ends it.

Not guaranteed: with ``stay`` the process keeps running after the run until Ctrl-C (or SIGTERM),
which is the point; if the run raises, the viewer stops at once and the error propagates.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from astuner.logview.server import LogviewServer, start_logview


@contextmanager
def logview_for_run(
    experiment_dir: Path, *, port: int = 8181, stay: bool = False, say: Callable[[str], None] | None = None
) -> Iterator[LogviewServer]:
    """Serve ``experiment_dir.parent`` while the ``with`` body runs; print the URL of this experiment.

    On a normal exit the viewer stops, or with ``stay`` keeps serving until Ctrl-C first.
    """
    say = say or (lambda msg: print(msg, flush=True))
    experiment_dir = Path(experiment_dir)
    server = start_logview(experiment_dir.parent, port=port, say=say)
    say(f"astuner: logview at {server.url_for(experiment_dir.name)}")
    finished = False
    try:
        yield server
        finished = True
    finally:
        if finished and stay:
            say(f"astuner: run finished; logview keeps serving at {server.url} (Ctrl-C to stop)")
            server.wait()
        server.stop()
