"""The log viewer's HTTP server: a static page plus a small JSON API over an ``ExperimentStore``.

``start_logview(exp_root)`` serves in a background thread of the calling process and returns a
``LogviewServer`` (``.url``, ``.url_for(experiment)``, ``.stop()``). It listens on a loopback
address only (the viewer has no authentication and shows model outputs and configs); when the
requested port is taken it tries the next ones and says which it took.

Endpoints (GET only; every name is validated by the store, never joined into a path here):

- ``/`` and ``/static/<file>``: the page (HTML, JS, CSS shipped in ``astuner/logview/static``;
  nothing is fetched from elsewhere, and the Content-Security-Policy forbids it).
- ``/api/experiments``: experiments under the root.
- ``/api/rollouts?exp=&file=&offset=&limit=&success=&reward_min=&reward_max=&bad_case=&task_id=``:
  a page of compact rows (no token arrays). ``bad_case`` is a flag name, ``any`` or ``none``.
- ``/api/rollout?exp=&file=&index=``: one rollout as stored.
- ``/api/bad_cases?exp=&file=&index=``: the rollout's advantage and where each flagged bad case
  happened (``astuner.logview.locate``).
- ``/api/metrics?exp=``: the rows of ``metrics.jsonl``.
- ``/api/curve.png?exp=``: the curve PNG; drawn in memory from ``metrics.jsonl`` when none is on disk.

Requests whose ``Host`` header names something other than this server's loopback address are
refused, so a web page elsewhere cannot read the logs through DNS rebinding.

Not guaranteed: the server is for one person on one machine; it is not hardened against a local
user who can already read the files, and a rollout is sent whole (about 3 MB of JSON for 100k
tokens), not streamed.
"""

from __future__ import annotations

import io
import ipaddress
import json
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from astuner.logview.store import ExperimentStore, NotFound, RolloutFilter, parse_bool
from astuner.metrics import METRICS_FILE

STATIC_DIR = Path(__file__).with_name("static")
_STATIC_TYPES = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "rollout.js": "text/javascript; charset=utf-8",
    "tokens.js": "text/javascript; charset=utf-8",
    "marks.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
}
_CSP = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'"
PORT_TRIES = 20


class BadRequest(ValueError):
    """A query parameter that cannot be parsed."""


class LogviewServer:
    """A running viewer: where it listens, and how to stop it."""

    def __init__(self, httpd: ThreadingHTTPServer, thread: threading.Thread, requested_port: int) -> None:
        self._httpd = httpd
        self._thread = thread
        self.requested_port = requested_port
        self.host, self.port = httpd.server_address[:2]
        self.exp_root: Path = httpd.store.root  # type: ignore[attr-defined]
        self._stopped = threading.Event()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    def url_for(self, experiment: str, rollout: tuple[str, int] | None = None) -> str:
        """The page opened on one experiment's rollouts, or on one rollout (``(file, index)``)."""
        url = f"{self.url}#/exp/{quote(experiment, safe='')}"
        if rollout is not None:
            url += f"/rollout/{quote(rollout[0], safe='')}/{int(rollout[1])}"
        return url

    def wait(self) -> None:
        """Block until ``stop()`` is called from another thread or Ctrl-C; then stop."""
        try:
            while not self._stopped.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
        self.stop()

    def stop(self) -> None:
        """Stop serving and free the port; calling it again does nothing."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> "LogviewServer":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def start_logview(
    exp_root: Path, host: str = "127.0.0.1", port: int = 8181, *, say: Callable[[str], None] | None = None
) -> LogviewServer:
    """Serve the viewer for the experiments under ``exp_root`` in a daemon thread.

    ``port=0`` takes any free port. When ``port`` is taken, the next ``PORT_TRIES - 1`` ports are
    tried and ``say`` (default: print to stdout) reports the one taken; ``OSError`` if all are taken.
    ``host`` must be a loopback address (``ValueError`` otherwise).
    """
    host = "127.0.0.1" if host == "localhost" else host
    if not _is_loopback(host):
        raise ValueError(f"logview serves on a loopback address only (127.0.0.1), not {host!r}")
    say = say or (lambda msg: print(msg, flush=True))
    store = ExperimentStore(Path(exp_root))
    httpd, last_error = None, None
    for candidate in [port] if port == 0 else range(port, min(port + PORT_TRIES, 65536)):
        try:
            httpd = ThreadingHTTPServer((host, candidate), _Handler)
            break
        except OSError as exc:
            last_error = exc
    if httpd is None:
        raise OSError(f"logview: ports {port}-{port + PORT_TRIES - 1} on {host} are all taken ({last_error})")
    httpd.daemon_threads = True
    httpd.store = store  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, name="astuner-logview", daemon=True)
    thread.start()
    server = LogviewServer(httpd, thread, port)
    if port not in (0, server.port):
        say(f"astuner: logview port {port} is taken; using {server.port}")
    return server


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.IPv4Address(host).is_loopback
    except ValueError:
        return False


class _Handler(BaseHTTPRequestHandler):
    server_version = "astuner-logview"

    def log_message(self, format: str, *args: Any) -> None:
        """Request lines are not printed: the viewer shares the run's terminal."""

    def do_GET(self) -> None:
        if not self._host_ok():
            self._send_error(HTTPStatus.FORBIDDEN, "unexpected Host header")
            return
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        try:
            self._route(parts.path, query)
        except NotFound as exc:
            self._send_error(HTTPStatus.NOT_FOUND, str(exc))
        except FileNotFoundError:
            self._send_error(HTTPStatus.NOT_FOUND, "file vanished")
        except BadRequest as exc:
            self._send_error(HTTPStatus.BAD_REQUEST, str(exc))
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _route(self, path: str, q: dict[str, str]) -> None:
        store: ExperimentStore = self.server.store  # type: ignore[attr-defined]
        if path in ("/", "/index.html"):
            self._send_static("index.html")
        elif path.startswith("/static/"):
            self._send_static(path[len("/static/"):])
        elif path == "/api/experiments":
            self._send_json({"root": str(store.root), "experiments": store.experiments()})
        elif path == "/api/rollouts":
            flt = RolloutFilter(
                success=parse_bool(q.get("success")),
                reward_min=_float(q, "reward_min"),
                reward_max=_float(q, "reward_max"),
                bad_case=q.get("bad_case") or None,
                task_id=q.get("task_id") or None,
            )
            page = store.rollouts(
                _need(q, "exp"), flt, file=q.get("file") or None,
                offset=_int(q, "offset", 0), limit=_int(q, "limit", 50),
            )
            self._send_json(page)
        elif path == "/api/rollout":
            body = _strict_json(store.rollout_bytes(_need(q, "exp"), _need(q, "file"), _int(q, "index", -1)))
            self._send(HTTPStatus.OK, "application/json; charset=utf-8", body)
        elif path == "/api/bad_cases":
            from astuner.logview.locate import locate_bad_cases

            record = store.rollout_record(_need(q, "exp"), _need(q, "file"), _int(q, "index", -1))
            self._send_json(locate_bad_cases(record))
        elif path == "/api/metrics":
            self._send_json({"experiment": _need(q, "exp"), "rows": store.metrics(_need(q, "exp"))})
        elif path == "/api/curve.png":
            self._send_curve(store, _need(q, "exp"))
        else:
            raise NotFound(f"no such page {path!r}")

    def _send_curve(self, store: ExperimentStore, name: str) -> None:
        png = store.curve_path(name)
        if png is not None:
            self._send(HTTPStatus.OK, "image/png", png.read_bytes())
            return
        metrics = store.experiment_dir(name) / METRICS_FILE
        if not metrics.is_file():
            raise NotFound(f"{name!r} has no metrics.jsonl")
        from astuner.metrics import plot_curves

        buf = io.BytesIO()
        try:
            plot_curves(metrics, buf, title=store.experiment_dir(name).name)
        except (ImportError, ValueError) as exc:
            raise NotFound(f"no curve for {name!r}: {exc}") from None
        self._send(HTTPStatus.OK, "image/png", buf.getvalue())

    def _host_ok(self) -> bool:
        host = self.headers.get("Host")
        if host is None:
            return True
        port = self.server.server_address[1]
        return host in {f"127.0.0.1:{port}", f"localhost:{port}", f"{self.server.server_address[0]}:{port}"}

    def _send_static(self, name: str) -> None:
        if name not in _STATIC_TYPES:
            raise NotFound(f"no static file {name!r}")
        self._send(HTTPStatus.OK, _STATIC_TYPES[name], (STATIC_DIR / name).read_bytes())

    def _send_json(self, data: Any) -> None:
        body = json.dumps(data, ensure_ascii=False, allow_nan=False, default=str).encode("utf-8")
        self._send(HTTPStatus.OK, "application/json; charset=utf-8", body)

    def _send_error(self, status: HTTPStatus, message: str) -> None:
        self._send(status, "application/json; charset=utf-8", json.dumps({"error": message}).encode("utf-8"))

    def _send(self, status: HTTPStatus, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Security-Policy", _CSP)
        self.end_headers()
        self.wfile.write(body)


def _strict_json(body: bytes) -> bytes:
    """Python writes NaN/Infinity into JSON by default and browsers reject them; those become null."""
    if b"NaN" not in body and b"Infinity" not in body:
        return body
    data = json.loads(body, parse_constant=lambda _: None)
    return json.dumps(data, ensure_ascii=False).encode("utf-8")


def _need(q: dict[str, str], key: str) -> str:
    if not q.get(key):
        raise BadRequest(f"missing query parameter {key!r}")
    return q[key]


def _int(q: dict[str, str], key: str, default: int) -> int:
    try:
        return int(q[key]) if q.get(key) else default
    except ValueError:
        raise BadRequest(f"{key}: not an integer: {q[key]!r}") from None


def _float(q: dict[str, str], key: str) -> float | None:
    try:
        return float(q[key]) if q.get(key) else None
    except ValueError:
        raise BadRequest(f"{key}: not a number: {q[key]!r}") from None

