"""math-verify in a child process: one JSON request per line on stdin, one JSON reply per line on stdout.

Why a process: math-verify hands the strings to sympy, which can compute for minutes on a short
hostile answer, sometimes inside one big-integer operation that holds the GIL (``9^{9^{9^{9}}}``):
no thread and no signal handler can interrupt that, but the parent can SIGKILL this process
(``math_verify_guard.py``). math-verify's own timeouts use ``SIGALRM`` and work only in a main
thread; they are turned off here (``parsing_timeout=None``, ``timeout_seconds=None``) and the
parent's deadline is the only one.

Started by path (``python .../math_verify_worker.py``), so it needs neither astuner on
``sys.path`` nor any of astuner's imports: standard library and ``math_verify`` only.

Protocol, one line of JSON per message:

- first line out: ``{"ready": true, "version": "<math-verify version>"}``, or ``{"error": "..."}``
  followed by exit status 1 when math-verify cannot be imported;
- request ``{"gold": str, "answer": str}`` -> ``{"match": bool}``, or ``{"error": "<type>: <text>"}``
  when parsing or verifying raised;
- end of stdin (the parent closed the pipe or died) -> exit status 0.

Both strings are parsed as written (the parent wraps them in ``$...$``). Anything the libraries
print goes to stderr, so stdout carries only protocol lines. Not guaranteed: a reply for a request
that is not a JSON object with two strings (it gets an ``error`` reply, not a crash, but its
meaning is the parent's business).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from typing import IO, Any


def _drop_own_folder_from_path() -> None:
    """Running a file puts its folder first on ``sys.path``; astuner's ``task_judge`` modules must
    not shadow installed packages of the same name."""
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]


def _protocol_stream() -> IO[str]:
    """A private copy of stdout for protocol lines; fd 1 itself then points at stderr."""
    stream = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return stream


def _send(stream: IO[str], message: dict[str, Any]) -> None:
    stream.write(json.dumps(message) + "\n")
    stream.flush()


def _answer(math_verify: Any, line: str) -> dict[str, Any]:
    try:
        request = json.loads(line)
        gold = math_verify.parse(str(request["gold"]), parsing_timeout=None)
        answer = math_verify.parse(str(request["answer"]), parsing_timeout=None)
        matched = bool(gold) and bool(answer) and math_verify.verify(gold, answer, timeout_seconds=None)
        return {"match": bool(matched)}
    except Exception as exc:  # noqa: BLE001 - every failure is reported, never fatal
        return {"error": f"{type(exc).__name__}: {str(exc)[:200]}"}


def main() -> int:
    _drop_own_folder_from_path()
    out = _protocol_stream()
    try:
        import math_verify
        from importlib.metadata import version
    except Exception as exc:  # noqa: BLE001 - reported to the parent as the reason
        _send(out, {"error": f"cannot import math_verify: {type(exc).__name__}: {exc}"})
        return 1
    logging.disable(logging.WARNING)  # its "timeout is disabled" warning: the parent enforces one
    try:
        mv_version = version("math-verify")
    except Exception:  # noqa: BLE001 - the version is informational only
        mv_version = "unknown"
    _send(out, {"ready": True, "version": mv_version})
    for line in sys.stdin:
        if line.strip():
            _send(out, _answer(math_verify, line))
    return 0


if __name__ == "__main__":
    sys.exit(main())
