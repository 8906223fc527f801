"""``--debugpy [HOST:]PORT`` and ``--wait-for-client``: attach a debugger (e.g. VSCode) to a run.

What it does. The CLI checks the flags before anything else (:func:`request_from_flags`: the
address, ``--wait-for-client`` only with ``--debugpy``, debugpy installed), then checks the config.
Once the config has passed and before the run's folder is created or any workflow runs,
:func:`start` makes debugpy listen on HOST:PORT (host 127.0.0.1 unless given), prints one line
saying where and how to attach, and with ``--wait-for-client`` blocks until a client has attached
and finished configuring, so breakpoints set in the client are in place before the first
rollout. With ``--backbone=debug`` (and ``local``) workflows and judges run in this process, so
breakpoints in them are hit.

What it does not guarantee:

- Only the main astuner process is debugged. debugpy is told not to follow child processes
  (``subProcess=False``): otherwise it would put itself into every Python child, the Python
  tool's sandboxed workers (which have no network) included. So breakpoints are not hit in
  model-written code run by ``execute_python_code``, in vLLM servers, in Ray workers, or in
  Trinity's explorer and trainer, which is where the ``trinity`` backbone runs workflows and
  judges (a note says so).
- Code that runs before listening starts (flag parsing, config checks) cannot be stopped in this
  way; start astuner from the debugger instead (the tutorial's "launch astuner debug backbone").
- Not a security boundary: debugpy does not authenticate clients, and whoever connects can run
  any code in this process. A host other than loopback exposes that to the network (the line
  printed says so).
- Breakpoints in the standard-library modules Python 3.11+ ships frozen may be missed; pydevd's
  four-line warning about that is silenced (``PYDEVD_DISABLE_FILE_VALIDATION``, unless set).
  ``python -Xfrozen_modules=off -m astuner.cli ...`` lifts it. Workflow, judge and astuner code
  are never frozen.
- Run time under a debugger is longer (tracing), so timings taken with ``--debugpy`` mean little.
- A client that detaches does not stop the run; a run already under a debugger (started from
  VSCode) ignores ``--debugpy`` with a note instead of listening a second time.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from dataclasses import dataclass

DEFAULT_HOST = "127.0.0.1"
INSTALL_HINT = 'pip install "astuner[debug]"'
LAUNCH_JSON = "tutorial/example_math_agent/.vscode/launch.json"
"""Where the tutorial's VSCode launch configuration ("attach to astuner") lives, for the hint."""

_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


class DebugpyError(Exception):
    """A bad ``--debugpy``/``--wait-for-client`` request, or debugpy could not listen; one line."""


@dataclass(frozen=True)
class DebugpyRequest:
    """What the flags asked for: listen on ``host:port``; block until a client attaches if ``wait_for_client``."""

    host: str
    port: int
    wait_for_client: bool


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--debugpy`` and ``--wait-for-client``; values are checked by :func:`request_from_flags`.

    The values are plain strings for argparse, so a bad one is reported by the CLI as one line
    (argparse's own errors print the usage as well).
    """
    parser.add_argument(
        "--debugpy",
        default="",
        metavar="[HOST:]PORT",
        help=f"listen for a debugger (debugpy; host default {DEFAULT_HOST}) once the config is checked, "
        "before the run starts; only this process is debugged (not Ray, Trinity or tool subprocesses). "
        f"Needs {INSTALL_HINT}",
    )
    parser.add_argument(
        "--wait-for-client",
        action="store_true",
        help="with --debugpy: wait until a debugger attaches before the run's folder is created and the first rollout runs",
    )


def parse_address(text: str) -> tuple[str, int]:
    """``PORT``, ``HOST:PORT`` or ``[IPv6]:PORT`` → ``(host, port)``; port 0 lets the system choose.

    Raises :class:`DebugpyError` naming the flag for anything else.
    """
    value = text.strip()
    host, sep, port_text = value.rpartition(":")
    if not sep:
        host, port_text = DEFAULT_HOST, value
    elif host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise DebugpyError(f"--debugpy: {text!r}: write an IPv6 host in brackets, e.g. [::1]:5678")
    if not host:
        raise DebugpyError(f"--debugpy: {text!r}: empty host before ':' (give [HOST:]PORT, e.g. 5678 or 127.0.0.1:5678)")
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise DebugpyError(f"--debugpy: {text!r}: the port must be a number from 0 to 65535 (give [HOST:]PORT, e.g. 5678)")
    return host, int(port_text)


def request_from_flags(address: str, wait_for_client: bool) -> DebugpyRequest | None:
    """Check the two flags without importing or starting anything; ``None`` when ``--debugpy`` is absent.

    Raises :class:`DebugpyError` for ``--wait-for-client`` alone, a bad address, or debugpy not
    installed (naming the extra that installs it).
    """
    if not address:
        if wait_for_client:
            raise DebugpyError("--wait-for-client needs --debugpy [HOST:]PORT (it waits for the debugger --debugpy listens for)")
        return None
    host, port = parse_address(address)
    if importlib.util.find_spec("debugpy") is None:
        raise DebugpyError(f"--debugpy: debugpy is not installed; install it with: {INSTALL_HINT}")
    return DebugpyRequest(host=host, port=port, wait_for_client=wait_for_client)


def listening_line(host: str, port: int, *, waiting: bool) -> str:
    """The one line printed once debugpy listens: where, how to attach, and whether the run waits."""
    exposed = "" if host in _LOOPBACK else " (not loopback: anyone who can reach it can run code in this process)"
    then = "waiting for it before the run starts" if waiting else "the run starts now"
    return (
        f"astuner: debugpy listening on {host}:{port}{exposed}; attach a debugger there "
        f'(VSCode: "attach to astuner" in {LAUNCH_JSON}); {then}'
    )


def already_debugged() -> bool:
    """Whether this process already runs under debugpy/pydevd (launched from VSCode or ``python -m debugpy``)."""
    constants = sys.modules.get("_pydevd_bundle.pydevd_constants")
    return constants is not None and constants.get_global_debugger() is not None


def start(request: DebugpyRequest, *, backbone: str) -> tuple[str, int] | None:
    """Listen as ``request`` says, print where, and wait for the client if asked.

    Returns the address debugpy listens on (the real port when 0 was asked), or ``None`` when the
    process already runs under a debugger (then only a note is printed). Raises
    :class:`DebugpyError` when debugpy cannot listen (port taken, host not local, ...). Blocks
    for as long as no client attaches when ``request.wait_for_client``; Ctrl-C ends the wait.
    """
    if already_debugged():
        print("astuner: note: already running under a debugger; --debugpy is ignored", file=sys.stderr, flush=True)
        return None
    os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    import debugpy

    debugpy.configure(subProcess=False)
    try:
        host, port = debugpy.listen((request.host, request.port))
    except (RuntimeError, OSError, ValueError) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise DebugpyError(f"--debugpy {request.host}:{request.port}: cannot listen: {reason}") from None
    print(listening_line(host, port, waiting=request.wait_for_client), flush=True)
    if backbone == "trinity":
        print(
            "astuner: note: --debugpy debugs only this process; the trinity backbone runs workflows and judges "
            "in Ray workers, where breakpoints are not hit (use --backbone=debug for them)",
            file=sys.stderr,
            flush=True,
        )
    if request.wait_for_client:
        debugpy.wait_for_client()
    return host, port
