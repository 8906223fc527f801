"""Launch ``vllm serve`` for one run: the command line, a free port, the log, readiness, and stop.

Upstream's debug backbone started a vLLM server that nothing ever stopped and that later runs
reused by argument hash (upstream inventory §8.1, §12.2 item 5). Here a server belongs to the run
that started it: ``VllmServer.start`` launches it in its own session with its output appended to
``<experiment dir>/vllm_server.log``, records it in astuner's process registry (so ``astuner
--kill vllm`` can end it), waits until ``/health`` answers and ``/v1/models`` lists the served name,
and ``stop`` ends its whole process group. ``astuner.engine.server_guard`` stops it at exit and on
SIGTERM/SIGHUP as well.

The command line keeps upstream's flags (tensor parallel size lowered to the visible GPUs, the
context limit, the hermes tool parser with auto tool choice, prefix caching, the seed, the port)
and adds what token-exact training needs: ``--logprobs-mode processed_logprobs`` so reported
logprobs are those of the distribution sampled from (temperature applied), ``--generation-config
vllm`` so the model's ``generation_config.json`` does not silently add top-k or repetition
penalties, and a fixed ``--served-model-name`` so restarts on new weights keep the same name.

Not guaranteed: that the port chosen stays free until vLLM binds it (a lost race shows up as
"address already in use" in the log and is retried twice on another free port); that the flags
exist in vLLM versions outside the ``[vllm]`` extra's range; that a server whose process is
killed with SIGKILL together with astuner is stopped (see ``server_guard``).
"""

from __future__ import annotations

import importlib.util
import os
import shlex
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from astuner import procs
from astuner.engine.base import EngineError
from astuner.engine.server_guard import guard, stop_process_group, unguard

TAG = "vllm-server"
LOG_NAME = "vllm_server.log"
INSTALL_HINT = "pip install -e '.[vllm]'"
PORT_ATTEMPTS = 3


class VllmStartError(EngineError):
    """``vllm serve`` did not become ready; the message quotes the end of its log."""


class VllmNotInstalled(VllmStartError):
    """Neither a ``vllm`` executable nor the ``vllm`` module is available."""


@dataclass
class ServeOptions:
    """Everything on the ``vllm serve`` command line except the launcher, the model and the port."""

    served_model_name: str
    seed: int
    max_model_len: int | None = None
    host: str = "127.0.0.1"
    tensor_parallel_size: int = 1
    gpu_memory_utilization: float = 0.9
    max_num_seqs: int = 0
    enforce_eager: bool = True
    dtype: str = "auto"
    sleep_mode: bool = False
    """``--enable-sleep-mode`` plus ``VLLM_SERVER_DEV_MODE=1`` (the routes ``post`` calls for in-place weight sync)."""
    extra_args: list[str] = field(default_factory=list)


def find_launcher(executable: str = "") -> list[str]:
    """The argv prefix that runs vLLM's CLI: ``executable``, else ``vllm`` on PATH, else ``python -m``."""
    if executable:
        path = shutil.which(executable)
        if path is None:
            raise VllmNotInstalled(f"vllm.executable {executable!r} is not an executable file or on PATH")
        return [path]
    path = shutil.which("vllm")
    if path is not None:
        return [path]
    if importlib.util.find_spec("vllm") is not None:
        return [sys.executable, "-m", "vllm.entrypoints.cli.main"]
    raise VllmNotInstalled(
        f"vLLM is not installed (no 'vllm' on PATH, no vllm module for {sys.executable}); "
        f"on a GPU machine: {INSTALL_HINT}"
    )


def visible_gpu_count() -> int:
    """CUDA devices this process may use (``CUDA_VISIBLE_DEVICES`` respected); 0 without CUDA."""
    import torch

    return int(torch.cuda.device_count())


def clamp_tensor_parallel(requested: int, visible_gpus: int) -> int:
    """Upstream's rule, ``min(requested, visible)``, but never below 1 (vLLM then reports the problem)."""
    return max(1, min(requested, visible_gpus))


def serve_command(launcher: list[str], model: str | Path, opts: ServeOptions, port: int) -> list[str]:
    """The exact ``vllm serve`` argv for ``model`` on ``port``."""
    cmd = [
        *launcher, "serve", str(model),
        "--served-model-name", opts.served_model_name,
        "--host", opts.host,
        "--port", str(port),
        "--tensor-parallel-size", str(opts.tensor_parallel_size),
    ]
    if opts.max_model_len:
        cmd += ["--max-model-len", str(opts.max_model_len)]
    cmd += [
        "--dtype", opts.dtype,
        "--gpu-memory-utilization", f"{opts.gpu_memory_utilization:g}",
        "--seed", str(opts.seed),
        "--enable-prefix-caching",
        "--enable-auto-tool-choice",
        "--tool-call-parser", "hermes",
        "--logprobs-mode", "processed_logprobs",
        "--generation-config", "vllm",
    ]
    if opts.max_num_seqs:
        cmd += ["--max-num-seqs", str(opts.max_num_seqs)]
    if opts.enforce_eager:
        cmd.append("--enforce-eager")
    if opts.sleep_mode:
        cmd.append("--enable-sleep-mode")
    return cmd + [str(arg) for arg in opts.extra_args]


def _family(host: str) -> int:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def port_is_free(host: str, port: int) -> bool:
    """Whether a server could bind ``host:port`` now (with SO_REUSEADDR, as servers do)."""
    with socket.socket(_family(host), socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str) -> int:
    """A port the kernel considers free on ``host`` right now."""
    with socket.socket(_family(host), socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def client_host(host: str) -> str:
    """Where to connect to a server bound on ``host`` (a wildcard address means loopback)."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def log_tail(path: Path, offset: int = 0, lines: int = 12, width: int = 300) -> list[str]:
    """The last non-empty ``lines`` of ``path`` from byte ``offset`` on, each cut to ``width`` characters."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return []
    kept = [line.strip() for line in text.splitlines() if line.strip()]
    return [line[:width] for line in kept[-lines:]]


def _quote_tail(tail: list[str]) -> str:
    return "last log lines: " + " | ".join(tail) if tail else "the log is empty"


class VllmServer:
    """One ``vllm serve`` process at a time (``stop`` then ``start`` replaces it); a context manager that stops it."""

    def __init__(
        self,
        launcher: list[str],
        options: ServeOptions,
        *,
        port: int,
        log_path: Path,
        startup_timeout_s: float = 1800.0,
        stop_grace_s: float = 15.0,
        say: Callable[[str], None] | None = None,
    ) -> None:
        self.launcher = list(launcher)
        self.options = options
        self.preferred_port = port
        self.log_path = Path(log_path)
        self.startup_timeout_s = startup_timeout_s
        self.stop_grace_s = stop_grace_s
        self.say = say or (lambda msg: print(msg, flush=True))
        self.proc: subprocess.Popen | None = None
        self.port: int | None = None
        self.command: list[str] = []
        self._record: Path | None = None
        self._log_offset = 0

    @property
    def base_url(self) -> str:
        """``http://host:port/v1`` of the running server, as the openai client and engine take it."""
        if self.port is None:
            raise EngineError("the vLLM server has not been started")
        return f"http://{client_host(self.options.host)}:{self.port}/v1"

    def __enter__(self) -> VllmServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, model: str | Path) -> VllmServer:
        """Launch on ``model`` and return once it answers; ``VllmStartError`` (server stopped) otherwise."""
        if self.proc is not None:
            raise EngineError(f"the vLLM server is already running (pid {self.proc.pid}); stop it first")
        for attempt in range(PORT_ATTEMPTS):
            port = self._choose_port(first=attempt == 0)
            try:
                self._launch(model, port)
                self._wait_ready()
                return self
            except _PortLost:
                self.stop()
            except BaseException:
                self.stop()
                raise
        raise VllmStartError(
            f"vllm serve could not bind a port in {PORT_ATTEMPTS} tries ({self.log_path}): "
            + _quote_tail(log_tail(self.log_path, self._log_offset))
        )

    def stop(self) -> None:
        """End the server and its process group; forget its registry record. Idempotent."""
        proc = self.proc
        if proc is None:
            return
        stop_process_group(proc, self.stop_grace_s)
        if self._record is not None:
            self._record.unlink(missing_ok=True)
            self._record = None
        self.proc = None
        unguard(self)

    def post(self, route: str, *, params: dict[str, str] | None = None, body: dict | None = None,
             timeout_s: float = 600.0) -> None:
        """POST to one of the running server's routes (``/sleep``, ``/collective_rpc``, ...); ``EngineError``
        naming the route, the status and the end of the log when it does not answer 200."""
        if self.proc is None or self.port is None:
            raise EngineError(f"the vLLM server is not running; cannot POST {route}")
        url = self.base_url.removesuffix("/v1") + route
        try:
            with httpx.Client(timeout=timeout_s, trust_env=False) as client:
                reply = client.post(url, params=params, json=body)
        except httpx.HTTPError as exc:
            raise EngineError(f"vllm serve: POST {route} failed: {type(exc).__name__}: {exc}") from None
        if reply.status_code != 200:
            raise EngineError(
                f"vllm serve: POST {route} answered {reply.status_code} {reply.text[:300]!r} ({self.log_path}): "
                + _quote_tail(log_tail(self.log_path, self._log_offset, lines=4))
            )

    def _choose_port(self, *, first: bool) -> int:
        host, wanted = self.options.host, self.preferred_port
        if first and port_is_free(host, wanted):
            return wanted
        port = free_port(host)
        self.say(f"astuner: port {wanted} is taken; vllm serve uses port {port}")
        return port

    def _launch(self, model: str | Path, port: int) -> None:
        cmd = serve_command(self.launcher, model, self.options, port)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        if self.options.sleep_mode:
            env["VLLM_SERVER_DEV_MODE"] = "1"
        with open(self.log_path, "ab") as log:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            log.write(f"\n=== astuner {stamp}: {shlex.join(cmd)}\n".encode())
            log.flush()
            self._log_offset = log.tell()
            try:
                self.proc = subprocess.Popen(
                    cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, start_new_session=True
                )
            except OSError as exc:
                raise VllmStartError(f"cannot run {cmd[0]!r}: {exc.strerror or exc}") from None
        guard(self)
        self._record = procs.register(self.proc.pid, TAG, cmd, extra={"port": port, "log": str(self.log_path)})
        self.port, self.command = port, cmd
        self.say(f"astuner: starting vllm serve {model} on port {port} (log: {self.log_path})")

    def _wait_ready(self) -> None:
        assert self.proc is not None
        started = time.monotonic()
        deadline = started + self.startup_timeout_s
        with httpx.Client(timeout=5.0, trust_env=False) as client:
            while True:
                code = self.proc.poll()
                if code is not None:
                    self._raise_exited(code)
                if self._answers(client):
                    self.say(f"astuner: vllm serve ready at {self.base_url} after {time.monotonic() - started:.0f} s")
                    return
                if time.monotonic() >= deadline:
                    raise VllmStartError(
                        f"vllm serve did not answer {self.base_url.removesuffix('/v1')}/health within "
                        f"{self.startup_timeout_s:g} s and was stopped ({self.log_path}): "
                        + _quote_tail(log_tail(self.log_path, self._log_offset))
                    )
                time.sleep(0.25)

    def _answers(self, client: httpx.Client) -> bool:
        root = self.base_url.removesuffix("/v1")
        try:
            if client.get(f"{root}/health").status_code != 200:
                return False
            models = client.get(f"{self.base_url}/models")
        except httpx.HTTPError:
            return False
        try:
            names = [m.get("id") for m in models.json().get("data", [])] if models.status_code == 200 else None
        except (ValueError, AttributeError):
            names = None
        if names is None:
            return False
        if self.options.served_model_name not in names:
            raise VllmStartError(
                f"the server on port {self.port} serves {names}, not {self.options.served_model_name!r}"
            )
        return True

    def _raise_exited(self, code: int) -> None:
        tail = log_tail(self.log_path, self._log_offset)
        if any("address already in use" in line.lower() for line in tail):
            raise _PortLost
        raise VllmStartError(
            f"vllm serve exited with code {code} before it was ready ({self.log_path}): {_quote_tail(tail)}"
        )


class _PortLost(Exception):
    """The port was taken between our check and vLLM's bind; try another one."""
