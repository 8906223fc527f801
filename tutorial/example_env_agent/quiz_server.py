"""A small, real environment service: the arithmetic quiz (``quiz.py``) over HTTP.

Run it from the repository root with ``python -m tutorial.example_env_agent.quiz_server --port
8080`` (``--port 0`` picks a free port). The first line on stdout is ``env service listening on
http://HOST:PORT``. It speaks the env_service protocol (``astuner/env_service/client.py``): POST
``get_env_profile``, ``create``, ``step``, ``evaluate`` and ``release`` with JSON bodies, plus one
extension for tests and operators:
``instances`` (POST or GET) lists the live instances as ``{"data": {instance_id: task_id}}``.

Options for testing failure handling:

- ``--record FILE``: after every create and release, FILE is rewritten (atomically) with
  ``{"pid", "live": {instance: task}, "created": [...], "released": [...]}`` — so what was live
  can be read even after the process died;
- ``--crash-on-step K``: the process kills itself with SIGKILL when the K-th step request (counted
  over all instances) arrives, before answering it — a service dying mid-rollout;
- ``--step-delay-s S``: wait S seconds before answering each step — a slow service.

``--max-steps N`` (0: none) cuts an episode off after N answered questions: that step and any
later one answer ``is_terminated`` and ``is_truncated`` true (``astuner/env_service/step_api.py``),
so both a gymnasium-style client (truncated) and an older one (the episode is over) stop there.
Every step response carries ``is_truncated``.

It uses only the standard library (``ThreadingHTTPServer``: one thread per request) and ends
cleanly on SIGTERM or SIGINT. Not guaranteed: authentication, persistence of instances across
restarts, limits on the number of live instances; it is an example and a test fixture.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from astuner.env_service.step_api import to_wire
from tutorial.example_env_agent.quiz import ENV_TYPE, QuizGame, UnknownTask, task_ids


class _Reply(Exception):
    """Answer the request with this status and body (used for errors)."""

    def __init__(self, status: int, body: dict) -> None:
        super().__init__(body.get("error", ""))
        self.status = status
        self.body = body


class QuizService:
    """The live instances and the protocol's operations; safe to call from many threads."""

    def __init__(
        self, record: Path | None = None, crash_on_step: int = 0, step_delay_s: float = 0.0, max_steps: int = 0
    ) -> None:
        self.record = record
        self.crash_on_step = crash_on_step
        self.step_delay_s = step_delay_s
        self.max_steps = max_steps
        self.games: dict[str, QuizGame] = {}
        self.created: list[str] = []
        self.released: list[str] = []
        self.step_requests = 0
        self._lock = threading.Lock()
        self._write_record()

    def handle(self, endpoint: str, body: dict) -> dict:
        """One request's response body; raises ``_Reply`` for errors."""
        operations = {
            "get_env_profile": self.get_env_profile,
            "create": self.create,
            "step": self.step,
            "evaluate": self.evaluate,
            "release": self.release,
            "instances": self.instances,
        }
        if endpoint not in operations:
            raise _Reply(404, {"success": False, "error": f"unknown endpoint {endpoint!r}"})
        return operations[endpoint](body)

    def get_env_profile(self, body: dict) -> dict:
        self._check_env_type(body)
        split = (body.get("params") or {}).get("split", "train")
        try:
            return {"success": True, "data": task_ids(split)}
        except UnknownTask as exc:
            raise _Reply(400, {"success": False, "error": exc.args[0]}) from None

    def create(self, body: dict) -> dict:
        self._check_env_type(body)
        task_id = str(body.get("task_id"))
        instance_id = body.get("instance_id") or uuid.uuid4().hex
        try:
            game = QuizGame(task_id)
        except UnknownTask as exc:
            raise _Reply(400, {"success": False, "error": exc.args[0]}) from None
        with self._lock:
            if instance_id in self.games:
                raise _Reply(409, {"success": False, "error": f"instance {instance_id} already exists"})
            self.games[instance_id] = game
            self.created.append(instance_id)
            self._write_record()
        info = {"instance_id": instance_id, "env_type": ENV_TYPE, "task_id": task_id}
        return {"success": True, "data": {"state": game.first_messages(), "info": info}}

    def step(self, body: dict) -> dict:
        with self._lock:
            self.step_requests += 1
            crash = self.step_requests == self.crash_on_step
        if crash:
            os.kill(os.getpid(), signal.SIGKILL)
        if self.step_delay_s:
            time.sleep(self.step_delay_s)
        action = body.get("messages") or {}
        text = action.get("content", "") if isinstance(action, dict) else str(action)
        with self._lock:
            game = self._game(body)
            if self._at_limit(game):
                observation, terminated, truncated = "The episode is over: step limit reached.", False, True
            else:
                observation, terminated = game.step(text if isinstance(text, str) else str(text))
                truncated = not terminated and self._at_limit(game)
                if truncated:
                    observation += f"\nThe episode is over: step limit ({self.max_steps}) reached."
        state = {"role": "user", "content": observation}
        return {"success": True, "data": {"state": state, "reward": 0.0, **to_wire(terminated, truncated), "info": {}}}

    def _at_limit(self, game: QuizGame) -> bool:
        return bool(self.max_steps) and not game.done and len(game.results) >= self.max_steps

    def evaluate(self, body: dict) -> dict:
        sparse = bool((body.get("params") or {}).get("sparse", False))
        with self._lock:
            return {"success": True, "data": self._game(body).score(sparse)}

    def release(self, body: dict) -> dict:
        instance_id = body.get("instance_id")
        with self._lock:
            known = self.games.pop(instance_id, None) is not None
            if known:
                self.released.append(instance_id)
                self._write_record()
        return {"success": known}

    def instances(self, body: dict) -> dict:
        with self._lock:
            return {"success": True, "data": {i: g.task_id for i, g in self.games.items()}}

    def _game(self, body: dict) -> QuizGame:
        game = self.games.get(body.get("instance_id"))
        if game is None:
            raise _Reply(404, {"success": False, "error": f"no live instance {body.get('instance_id')!r}"})
        return game

    def _check_env_type(self, body: dict) -> None:
        if body.get("env_type") not in (ENV_TYPE, None):
            raise _Reply(400, {"success": False, "error": f"unknown env_type {body.get('env_type')!r}; this service hosts {ENV_TYPE!r}"})

    def _write_record(self) -> None:
        """Rewrite the record file atomically (callers hold the lock, or nothing runs yet)."""
        if self.record is None:
            return
        data = {
            "pid": os.getpid(),
            "live": {i: g.task_id for i, g in self.games.items()},
            "created": list(self.created),
            "released": list(self.released),
        }
        fd, tmp = tempfile.mkstemp(dir=self.record.parent, prefix=".record-")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f)
        os.replace(tmp, self.record)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
            if not isinstance(body, dict):
                raise ValueError("the body must be a JSON object")
        except ValueError as exc:
            self._send(400, {"success": False, "error": f"bad request body: {exc}"})
            return
        self._dispatch(body)

    def do_GET(self) -> None:
        self._dispatch({})

    def _dispatch(self, body: dict) -> None:
        try:
            try:
                self._send(200, self.server.service.handle(self.path.strip("/"), body))
            except _Reply as reply:
                self._send(reply.status, reply.body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up waiting (e.g. its timeout); nobody is left to answer

    def _send(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.verbose:
            super().log_message(format, *args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], service: QuizService, verbose: bool = False) -> None:
        super().__init__(address, _Handler)
        self.service = service
        self.verbose = verbose


def make_server(host: str = "127.0.0.1", port: int = 0, **options: Any) -> _Server:
    """A bound, not yet serving server (``port=0``: a free port; see ``server_address``)."""
    verbose = options.pop("verbose", False)
    record = options.pop("record", None)
    return _Server((host, port), QuizService(Path(record) if record else None, **options), verbose)


@contextmanager
def serve_in_thread(**options: Any) -> Iterator[str]:
    """Serve on a free local port in a daemon thread (for tests and notebooks); yields the base URL.

    ``options`` are ``make_server``'s (``record``, ``step_delay_s``...); ``crash_on_step`` would
    kill the calling process, so use a subprocess (``python -m ...``) for that.
    """
    server = make_server("127.0.0.1", 0, **options)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        host, port = server.server_address[:2]
        yield f"http://{host}:{port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tutorial.example_env_agent.quiz_server", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="port to listen on; 0 picks a free one (default 8080)")
    parser.add_argument("--record", default="", help="file that always holds the live/created/released instances")
    parser.add_argument("--crash-on-step", type=int, default=0, help="SIGKILL itself at the K-th step request (testing)")
    parser.add_argument("--step-delay-s", type=float, default=0.0, help="seconds to wait before answering a step (testing)")
    parser.add_argument("--max-steps", type=int, default=0, help="cut each episode off after N steps (truncated); 0: no limit")
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    args = parser.parse_args(argv)
    server = make_server(
        args.host, args.port, record=args.record or None, crash_on_step=args.crash_on_step,
        step_delay_s=args.step_delay_s, max_steps=args.max_steps, verbose=args.verbose,
    )
    host, port = server.server_address[:2]

    def stop(signum: int, frame: Any) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"env service listening on http://{host}:{port}", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
