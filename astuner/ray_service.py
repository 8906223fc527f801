"""``--with-ray``: start (or join) the Ray cluster the trinity backbone runs on, and the GPU check.

Single node (``MASTER_ADDR`` unset): astuner runs ``ray start --head --block`` in its own session,
records it in astuner's process registry (``astuner.procs``, kind ``ray``) and waits until Ray says
"Ray runtime started". A trinity run stops the head it started when it ends
(``astuner.backbone.trinity.launch.stop_started_head``, unless ``ASTUNER_KEEP_RAY=1``); otherwise
``astuner --kill ray`` ends it later (``ray stop`` when that is safe; see ``astuner.procs``). A Ray head astuner started earlier at the same port is reused; a Ray that is
already listening there but that astuner did not start is used as it is and never stopped by
``--kill``.

Multi-node (``MASTER_ADDR`` and ``MASTER_PORT`` set on every node, as cluster job launchers do): the
node whose host name or IP address is ``MASTER_ADDR`` starts the head at that address and port and
goes on to train; every other node joins with ``ray start --address=MASTER_ADDR:MASTER_PORT
--block`` and then waits while its Ray node runs (it lends its GPUs; training is driven from the
head).

Settings (environment): ``ASTUNER_RAY_PORT`` (single-node GCS port, default 6379),
``ASTUNER_RAY_ARGS`` (extra ``ray start`` arguments, e.g. ``--temp-dir=... --num-gpus=8``),
``ASTUNER_RAY_TIMEOUT_S`` (how long to wait for Ray to start, default 600). The launch sets
``RAY_ADDRESS`` so that Trinity connects to this cluster.

NVLink multicast off: every Ray node astuner starts (and, through the job's runtime environment,
every Ray worker of a trinity run, ``astuner.backbone.trinity.launch``) gets ``NCCL_NVLS_ENABLE=0``,
``TORCH_SYMM_MEM_DISABLE_MULTICAST=1`` and ``NVSHMEM_DISABLE_NVLS=1`` unless the variable is already
set in astuner's environment (the user's value is kept). The trainer-to-engine weight sync and
vLLM's tensor-parallel all-reduces do not need multicast, and a program that uses it can put a
shared host's GPUs out of service. A Ray head astuner did not start keeps its own environment; the
runtime environment still reaches the workers of astuner's job.

Not guaranteed: that the address astuner waits on is reachable from other nodes (Ray's own
``--node-ip-address`` detection decides that); that a port already open belongs to Ray.
"""

from __future__ import annotations

import os
import shlex
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from astuner import procs

READY_TEXT = "Ray runtime started"
MULTICAST_OFF = {"NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1", "NVSHMEM_DISABLE_NVLS": "1"}
"""NVLink multicast switched off in NCCL, PyTorch and NVSHMEM (the module docstring says why)."""
DEFAULT_PORT = 6379
MIN_FREE_RATIO = 0.95


class RayError(RuntimeError):
    """Ray is missing, would not start, or the cluster settings are wrong (one line for the user)."""

    def __init__(self, message: str, *, not_installed: bool = False) -> None:
        super().__init__(message)
        self.not_installed = not_installed


class GpuCheckError(RuntimeError):
    """No usable GPU, or a GPU that other work is already using (one line for the user)."""


@dataclass
class RayNode:
    """The Ray node this launch uses."""

    address: str
    role: str
    """``head`` (this machine runs the head), ``worker`` (joined a head elsewhere) or ``external``."""
    pid: int | None = None
    started: bool = False
    log_path: Path | None = None


def ray_cli() -> str | None:
    """The ``ray`` executable of this Python environment (else the one on PATH)."""
    local = Path(sys.executable).with_name("ray")
    if local.exists():
        return str(local)
    return shutil.which("ray")


def _require_cli() -> str:
    cli = ray_cli()
    if cli is None:
        raise RayError(
            "--with-ray: the 'ray' command is not installed in this environment; "
            "install the cluster backbone with: pip install -e '.[trinity]'",
            not_installed=True,
        )
    return cli


def _port_open(host: str, port: int, timeout_s: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def _local_names() -> set[str]:
    names = {socket.gethostname(), socket.getfqdn(), "localhost", "127.0.0.1"}
    for name in list(names):
        try:
            names.update(info[4][0] for info in socket.getaddrinfo(name, None))
        except OSError:
            pass
    return names


def _ip(host: str) -> str:
    """``host`` as an IP address (Ray's ``--node-ip-address`` wants one); unchanged if it cannot be resolved."""
    try:
        return socket.gethostbyname(host)
    except OSError:
        return host


def cluster_settings() -> tuple[str, int, bool] | None:
    """``(MASTER_ADDR, MASTER_PORT, this node is the head)`` for a multi-node launch, else None."""
    addr = os.environ.get("MASTER_ADDR", "").strip()
    if not addr:
        return None
    raw_port = os.environ.get("MASTER_PORT", "").strip()
    if not raw_port.isdigit():
        raise RayError(f"--with-ray: MASTER_ADDR is set to {addr!r} but MASTER_PORT is {raw_port!r}; set a port number")
    is_head = addr in _local_names() or os.environ.get("RANK", "") == "0"
    return addr, int(raw_port), is_head


def _wait_ready(proc, log_path: Path, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        text = log_path.read_text(errors="replace") if log_path.exists() else ""
        if READY_TEXT in text:
            return
        if proc.poll() is not None:
            tail = " | ".join(line.strip() for line in text.strip().splitlines()[-3:])
            raise RayError(f"--with-ray: {what} exited with code {proc.returncode} before it was ready: {tail} (log: {log_path})")
        time.sleep(0.2)
    raise RayError(f"--with-ray: {what} was not ready after {timeout_s:.0f} s (log: {log_path}); stop it with astuner --kill ray")


def _log_path(name: str) -> Path:
    directory = procs.registry_dir() / "logs"
    directory.mkdir(parents=True, exist_ok=True)
    return directory / f"{name}-{time.strftime('%Y%m%d_%H%M%S')}.log"


def multicast_off_env() -> dict[str, str]:
    """``MULTICAST_OFF``, with the value from astuner's environment wherever the user set one."""
    return {key: os.environ.get(key, value) for key, value in MULTICAST_OFF.items()}


def _ray_env() -> dict[str, str]:
    """The environment of a ``ray start`` astuner runs: astuner's own plus ``multicast_off_env()``."""
    return {**os.environ, **multicast_off_env()}


def _extra_args() -> list[str]:
    return shlex.split(os.environ.get("ASTUNER_RAY_ARGS", ""))


def _timeout() -> float:
    return float(os.environ.get("ASTUNER_RAY_TIMEOUT_S", "600"))


def ensure_ray(timeout_s: float | None = None) -> RayNode:
    """Start or join the Ray cluster for this launch (see the module docstring); sets ``RAY_ADDRESS``."""
    timeout_s = _timeout() if timeout_s is None else timeout_s
    _agree_on_auth_mode()
    cluster = cluster_settings()
    if cluster is None:
        node = _ensure_head("127.0.0.1", int(os.environ.get("ASTUNER_RAY_PORT", DEFAULT_PORT)), [], timeout_s)
    else:
        addr, port, is_head = cluster
        if is_head:
            node = _ensure_head(addr, port, [f"--node-ip-address={_ip(addr)}"], timeout_s)
        else:
            node = _join(addr, port, timeout_s)
    if node.role != "worker":
        os.environ["RAY_ADDRESS"] = node.address
    return node


def _agree_on_auth_mode() -> None:
    """Make ``ray start`` and this process use the same token-auth mode.

    Ray 2.5x+ turns token authentication on in ``ray start`` when ``~/.ray/auth_token`` exists and
    ``RAY_AUTH_MODE`` is unset, but a driver with the variable unset then fails to connect
    ("InvalidAuthToken"). Setting the variable here (inherited by the Ray child) keeps both sides equal.
    """
    if "RAY_AUTH_MODE" not in os.environ and (Path.home() / ".ray" / "auth_token").exists():
        os.environ["RAY_AUTH_MODE"] = "token"


def _ensure_head(host: str, port: int, args: list[str], timeout_s: float) -> RayNode:
    address = f"{host}:{port}"
    for rec in procs.find(tag="ray"):
        if rec.get("extra", {}).get("address") == address:
            return RayNode(address, "head", pid=rec["pid"], started=False)
    if _port_open(host, port):
        return RayNode(address, "external")
    cli = _require_cli()
    log_path = _log_path(f"ray_head-{port}")
    command = [cli, "start", "--head", "--block", f"--port={port}", "--disable-usage-stats", *args, *_extra_args()]
    proc = procs.spawn(command, "ray", log_path=log_path, env=_ray_env(), kind="ray",
                       extra={"address": address, "ray_cli": cli, "role": "head"})
    _wait_ready(proc, log_path, timeout_s, f"the Ray head ({' '.join(command[1:])})")
    return RayNode(address, "head", pid=proc.pid, started=True, log_path=log_path)


def _join(addr: str, port: int, timeout_s: float) -> RayNode:
    address = f"{addr}:{port}"
    for rec in procs.find(tag="ray_worker"):
        if rec.get("extra", {}).get("address") == address:
            return RayNode(address, "worker", pid=rec["pid"], started=False)
    cli = _require_cli()
    deadline = time.monotonic() + timeout_s
    while not _port_open(addr, port, timeout_s=2.0):
        if time.monotonic() > deadline:
            raise RayError(f"--with-ray: no Ray head at MASTER_ADDR:MASTER_PORT = {address} after {timeout_s:.0f} s")
        time.sleep(2.0)
    log_path = _log_path(f"ray_worker-{port}")
    command = [cli, "start", f"--address={address}", "--block", "--disable-usage-stats", *_extra_args()]
    proc = procs.spawn(command, "ray_worker", log_path=log_path, env=_ray_env(), kind="ray",
                       extra={"address": address, "ray_cli": cli, "role": "worker"})
    _wait_ready(proc, log_path, max(1.0, deadline - time.monotonic()), f"joining the Ray head at {address}")
    return RayNode(address, "worker", pid=proc.pid, started=True, log_path=log_path)


def describe(node: RayNode) -> str:
    if node.role == "external":
        return f"using the Ray cluster already running at {node.address} (not started by astuner: --kill will not stop it)"
    verb = "started" if node.started else "reusing"
    what = "Ray head" if node.role == "head" else "Ray worker node joined to"
    where = node.address
    log = f"; log {node.log_path}" if node.log_path else ""
    return f"{verb} {what} {where} (pid {node.pid}{log}); stop it with: astuner --kill ray"


def wait_as_worker(node: RayNode) -> int:
    """Keep a worker node in the cluster until its Ray process ends (Ctrl+C leaves it running)."""
    print("astuner: this node only lends its GPUs to the cluster; training is driven from the head node "
          f"({node.address}). Waiting while Ray runs here.", flush=True)
    try:
        while node.pid is not None and Path(f"/proc/{node.pid}").exists():
            time.sleep(5)
    except KeyboardInterrupt:
        return 130
    return 0


def with_ray_only() -> int:
    """``astuner --with-ray`` without ``--conf``: start or join Ray and return (a worker node waits)."""
    node = ensure_ray()
    print(f"astuner: {describe(node)}", flush=True)
    return wait_as_worker(node) if node.role == "worker" else 0


def check_gpus(min_free_ratio: float = MIN_FREE_RATIO) -> list[str]:
    """Upstream's pre-flight check: every visible GPU must have at least ``min_free_ratio`` of its memory free.

    Returns one line per GPU; raises ``GpuCheckError`` when ``nvidia-smi`` is missing or fails,
    lists no GPU, or a GPU is busier than allowed.
    """
    exe = shutil.which("nvidia-smi")
    skip = "pass --skip-gpu-check to launch anyway"
    if exe is None:
        raise GpuCheckError(f"no NVIDIA GPU found (nvidia-smi is not installed); the trinity backbone needs GPUs; {skip}, "
                            "or use --backbone=local (one-process GRPO; CPU works) or --backbone=debug (rollouts only)")
    query = [exe, "--query-gpu=index,name,memory.total,memory.used", "--format=csv,noheader,nounits"]
    try:
        done = subprocess.run(query, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise GpuCheckError(f"nvidia-smi failed ({type(exc).__name__}); {skip}") from None
    if done.returncode != 0:
        first = (done.stderr or done.stdout).strip().splitlines()[:1]
        raise GpuCheckError(f"nvidia-smi exited with {done.returncode}: {first[0] if first else ''}; {skip}")
    return parse_gpu_lines(done.stdout, min_free_ratio)


def parse_gpu_lines(text: str, min_free_ratio: float = MIN_FREE_RATIO) -> list[str]:
    """Check ``nvidia-smi`` CSV lines (index, name, total MiB, used MiB); see ``check_gpus``."""
    lines, busy = [], []
    for raw in text.strip().splitlines():
        parts = [p.strip() for p in raw.split(",")]
        try:
            index, name, total, used = parts[0], ", ".join(parts[1:-2]), float(parts[-2]), float(parts[-1])
        except (IndexError, ValueError):
            raise GpuCheckError(f"cannot read nvidia-smi line {raw!r}; pass --skip-gpu-check to launch anyway") from None
        free = 1.0 - used / total if total > 0 else 0.0
        lines.append(f"GPU {index} {name}: {free:.0%} free")
        if free < min_free_ratio:
            busy.append(f"GPU {index} ({used:.0f}/{total:.0f} MiB used)")
    if not lines:
        raise GpuCheckError("nvidia-smi lists no GPU; the trinity backbone needs GPUs; pass --skip-gpu-check to launch anyway")
    if busy:
        raise GpuCheckError(
            f"GPUs in use by other work: {', '.join(busy)}; every GPU needs {min_free_ratio:.0%} free memory "
            "(end the other work, e.g. astuner --kill vllm, or pass --skip-gpu-check)"
        )
    return lines
