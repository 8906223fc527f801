"""``python -m astuner.logview --exp-dir DIR [--port N]``: browse past runs until Ctrl-C.

Prints one line ``astuner: logview serving <root> at <url>`` once it listens (``spawn_logview``
waits for it). Exit codes: 0 after Ctrl-C or SIGTERM, 2 when DIR is not a directory or the
arguments are wrong, 1 when no port could be bound.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from astuner.logview.server import start_logview


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m astuner.logview", description="Serve astuner's log viewer on 127.0.0.1.")
    p.add_argument("--exp-dir", default="saved_experiments", help="the --exp-dir of the runs (or one run's directory)")
    p.add_argument("--port", type=int, default=8181, help="first port to try; the next free one is used if taken")
    args = p.parse_args(argv)
    root = Path(args.exp_dir)
    if not root.is_dir():
        print(f"astuner.logview: error: --exp-dir {root} is not a directory", file=sys.stderr)
        return 2
    try:
        server = start_logview(root, port=args.port)
    except OSError as exc:
        print(f"astuner.logview: error: {exc}", file=sys.stderr)
        return 1
    signal.signal(signal.SIGTERM, lambda *_: server.stop())
    print(f"astuner: logview serving {root.resolve()} at {server.url} (Ctrl-C to stop)", flush=True)
    server.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
