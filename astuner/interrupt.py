"""SIGTERM as an exception, so a run stopped with ``kill`` ends the way Ctrl-C ends it.

Python turns Ctrl-C (SIGINT) into ``KeyboardInterrupt``: ``finally`` blocks run and a run can save
what finished. SIGTERM's default action ends the process at once, with nothing saved. Inside
``sigterm_raises()`` a SIGTERM raises ``Terminated`` in the main thread instead; the CLI reports it
and exits 143 (128 + 15), as Ctrl-C exits 130. ``Terminated`` is a ``SystemExit``, so ``except
Exception`` in workflow code cannot swallow it, asyncio stops the event loop on it at once, and an
uncaught one still ends the process with code 143.

The first SIGTERM raises; the handler then gives the signal back its default action, so a second
SIGTERM during the cleanup ends the process at once (a cleanup that hangs cannot hold it).

Not guaranteed: the handler runs between Python bytecodes of the main thread, so a SIGTERM that
arrives during a long C call (a tokenizer load, a forward pass) acts when that call returns;
outside the main thread ``sigterm_raises`` changes nothing; SIGKILL cannot be caught at all.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any

SIGTERM_EXIT_CODE = 128 + signal.SIGTERM
SIGINT_EXIT_CODE = 128 + signal.SIGINT


class Terminated(SystemExit):
    """Raised by ``sigterm_raises`` when the process receives SIGTERM."""

    def __init__(self) -> None:
        super().__init__(SIGTERM_EXIT_CODE)


def _raise_terminated(signum: int, frame: Any) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    raise Terminated()


@contextlib.contextmanager
def sigterm_raises() -> Iterator[None]:
    """Within the block, SIGTERM raises ``Terminated``; the previous handler is restored after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
