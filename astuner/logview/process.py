"""The standalone viewer as a background process that ``astuner --kill logview`` can end.

For runs the viewer is a thread of the run (``logview_for_run``); this is for launchers that want
a viewer that outlives them, e.g. a cluster job's driver. The child runs ``python -m
astuner.logview`` through ``astuner.procs.spawn`` (its own session, so a kill takes its whole
process group; recorded with tag ``logview``) and writes its output to a log file.

Not guaranteed: the returned URL is the one the child printed; if the child dies later nobody is
told (``proc.poll()`` says so).
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

from astuner.procs import spawn

_URL = re.compile(r"logview serving .* at (http://\S+)")


def spawn_logview(
    exp_root: Path, port: int = 8181, *, log_path: Path | None = None, timeout_s: float = 20.0
) -> tuple[subprocess.Popen, str]:
    """Start ``python -m astuner.logview`` for ``exp_root``, register it, and wait for its URL.

    Output goes to ``log_path`` (default ``<exp_root>/.logview.log``, which the viewer does not
    list). Raises ``RuntimeError`` (after ending the child) if no URL appears in ``timeout_s``.
    """
    exp_root = Path(exp_root).resolve()
    log_path = Path(log_path) if log_path else exp_root / ".logview.log"
    command = [sys.executable, "-m", "astuner.logview", "--exp-dir", str(exp_root), "--port", str(port)]
    start = log_path.stat().st_size if log_path.exists() else 0
    proc = spawn(command, "logview", log_path=log_path)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with log_path.open("rb") as f:
            f.seek(start)
            found = _URL.search(f.read().decode("utf-8", "replace"))
        if found:
            return proc, found.group(1)
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    proc.kill()
    proc.wait()
    raise RuntimeError(f"logview did not start (exit code {proc.returncode}); see {log_path}")
