"""The ``vllm`` engine's server: command line, readiness, ports, failures, and that nothing survives.

A stand-in ``vllm`` executable (``tests/fake_vllm/vllm``, a small OpenAI-compatible server that
forks a child like vLLM's engine core) is put first on PATH; real vLLM needs a GPU machine and is
not installed here. ``FakeVllm`` (the ``fake_vllm`` fixture, shared with the other vllm tests) reads
the state files the stand-in writes, to find every process it started.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from astuner import procs
from astuner.config.schema_rollout import VllmEngineConfig
from astuner.engine import server_guard
from astuner.engine.base import SamplingParams
from astuner.engine.vllm_engine import build_vllm_engine
from astuner.engine.vllm_server import (
    ServeOptions,
    VllmNotInstalled,
    VllmServer,
    VllmStartError,
    clamp_tensor_parallel,
    find_launcher,
    serve_command,
)
from tests.conftest import REPO

pytestmark = pytest.mark.integration

FAKE_BIN = REPO / "tests" / "fake_vllm"


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


class FakeVllm:
    """The stand-in's state directory: which servers it started, with what argv, and who is still running."""

    def __init__(self, state_dir: Path, procs_dir: Path) -> None:
        self.state_dir = state_dir
        self.procs_dir = procs_dir

    def states(self) -> list[dict]:
        return [json.loads(p.read_text()) for p in sorted(self.state_dir.glob("*.json"))]

    def argv(self) -> list[str]:
        (state,) = self.states()
        return state["argv"]

    def requests(self) -> int:
        path = self.state_dir / "requests.log"
        return len(path.read_text().splitlines()) if path.exists() else 0

    def survivors(self, wait_s: float = 5.0) -> list[int]:
        """Pids (servers and their children) still running after up to ``wait_s`` seconds."""
        deadline = time.monotonic() + wait_s
        while True:
            alive = [pid for s in self.states() for pid in (s["pid"], s["child_pid"]) if _running(pid)]
            if not alive or time.monotonic() > deadline:
                return alive
            time.sleep(0.1)

    def records(self) -> list[str]:
        return sorted(p.name for p in self.procs_dir.glob("*.json"))


@pytest.fixture
def fake_vllm(tmp_path, monkeypatch):
    state, registry = tmp_path / "fake_state", tmp_path / "procs"
    state.mkdir()
    monkeypatch.setenv("PATH", f"{FAKE_BIN}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_VLLM_STATE_DIR", str(state))
    monkeypatch.setenv("ASTUNER_PROCS_DIR", str(registry))
    fake = FakeVllm(state, registry)
    yield fake
    for pid in fake.survivors(wait_s=0):
        os.kill(pid, signal.SIGKILL)


def start_engine(tmp_path: Path, **settings):
    settings.setdefault("port", free_tcp_port())
    return build_vllm_engine(
        VllmEngineConfig(**settings), "/models/tiny", seed=7, log_dir=tmp_path / "run", max_model_len=4096,
        say=lambda _: None,
    )


def free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_command_is_upstreams_flags_plus_token_exact_ones():
    opts = ServeOptions(served_model_name="policy", seed=12345, max_model_len=18000, tensor_parallel_size=2)
    assert serve_command(["vllm"], "/m/Qwen", opts, 18000) == [
        "vllm", "serve", "/m/Qwen",
        "--served-model-name", "policy", "--host", "127.0.0.1", "--port", "18000",
        "--tensor-parallel-size", "2", "--max-model-len", "18000", "--dtype", "auto",
        "--gpu-memory-utilization", "0.9", "--seed", "12345",
        "--enable-prefix-caching", "--enable-auto-tool-choice", "--tool-call-parser", "hermes",
        "--logprobs-mode", "processed_logprobs", "--generation-config", "vllm", "--enforce-eager",
    ]
    opts = ServeOptions(
        served_model_name="p", seed=1, max_num_seqs=64, enforce_eager=False, gpu_memory_utilization=0.45,
        extra_args=["--quantization", "fp8"],
    )
    cmd = serve_command(["python", "-m", "vllm.entrypoints.cli.main"], "/m", opts, 9)
    assert cmd[:5] == ["python", "-m", "vllm.entrypoints.cli.main", "serve", "/m"]
    assert "--max-model-len" not in cmd and "--enforce-eager" not in cmd
    assert cmd[cmd.index("--gpu-memory-utilization") + 1] == "0.45"
    assert cmd[-4:] == ["--max-num-seqs", "64", "--quantization", "fp8"]


def test_tensor_parallel_is_clamped_to_visible_gpus(fake_vllm, tmp_path, monkeypatch):
    assert clamp_tensor_parallel(4, 2) == 2
    assert clamp_tensor_parallel(1, 8) == 1
    assert clamp_tensor_parallel(4, 0) == 1
    monkeypatch.setattr("astuner.engine.vllm_engine.visible_gpu_count", lambda: 2)
    engine = start_engine(tmp_path, tensor_parallel_size=4)
    engine.close()
    argv = fake_vllm.argv()
    assert argv[argv.index("--tensor-parallel-size") + 1] == "2"


def test_engine_waits_for_readiness_and_is_token_exact(fake_vllm, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_VLLM_STARTUP_DELAY_S", "1.5")
    began = time.monotonic()
    engine = start_engine(tmp_path)
    try:
        assert time.monotonic() - began >= 1.5
        (state,) = fake_vllm.states()
        assert state["listening"] and _running(state["child_pid"])
        assert fake_vllm.records() == [f"vllm-server-{state['pid']}.json"]
        params = SamplingParams(max_tokens=32, stop_token_ids=[7], seed=3)
        done = asyncio.run(engine.generate([5, 6, 7], params))
        assert done.token_ids[-1] == 7 and done.finish_reason == "stop"
        assert done.logprobs == [-((t % 97) + 1) / 100 for t in done.token_ids]
        assert engine.base_url == f"http://127.0.0.1:{engine.server.port}/v1"
    finally:
        engine.close()
    assert fake_vllm.survivors() == [] and fake_vllm.records() == []
    log = (tmp_path / "run" / "vllm_server.log").read_text()
    assert "--logprobs-mode processed_logprobs" in log and "Application startup complete" in log


def test_busy_port_moves_the_server_to_a_free_one(fake_vllm, tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        engine = start_engine(tmp_path, port=taken)
        try:
            port = engine.server.port
            assert port != taken
            argv = fake_vllm.argv()
            assert argv[argv.index("--port") + 1] == str(port)
            assert engine.base_url == f"http://127.0.0.1:{port}/v1"
            done = asyncio.run(engine.generate([1, 2], SamplingParams(max_tokens=4)))
            assert len(done.token_ids) == 4 and done.finish_reason == "length"
        finally:
            engine.close()
    assert fake_vllm.survivors() == []


def test_port_lost_to_a_race_is_retried_on_another(fake_vllm, tmp_path, monkeypatch):
    port = free_tcp_port()
    monkeypatch.setenv("FAKE_VLLM_TAKEN_PORT", str(port))
    engine = start_engine(tmp_path, port=port)
    try:
        assert engine.server.port != port
        assert sorted(s["listening"] for s in fake_vllm.states()) == [False, True]
    finally:
        engine.close()
    assert fake_vllm.survivors() == [] and fake_vllm.records() == []


def test_startup_failure_quotes_the_log_tail_and_leaves_nothing(fake_vllm, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_VLLM_FAIL", "3")
    with pytest.raises(VllmStartError) as info:
        start_engine(tmp_path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("vllm serve exited with code 3 before it was ready")
    assert str(tmp_path / "run" / "vllm_server.log") in message
    assert "ValueError: fake start-up failure: not enough KV cache" in message
    assert fake_vllm.survivors() == [] and fake_vllm.records() == [] and server_guard.live() == []


def test_slow_start_times_out_and_the_server_is_stopped(fake_vllm, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_VLLM_STARTUP_DELAY_S", "60")
    expected = r"did not answer http://127\.0\.0\.1:\d+/health within 1 s and was stopped"
    with pytest.raises(VllmStartError, match=expected):
        start_engine(tmp_path, startup_timeout_s=1)
    assert len(fake_vllm.states()) == 1
    assert fake_vllm.survivors() == [] and fake_vllm.records() == []


def test_missing_vllm_is_one_line_saying_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *a: None)
    with pytest.raises(VllmNotInstalled) as info:
        find_launcher()
    assert "pip install -e '.[vllm]'" in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(VllmNotInstalled, match="not an executable"):
        find_launcher("no-such-vllm")


def test_stop_escalates_to_sigkill_when_sigterm_is_ignored(fake_vllm, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_VLLM_IGNORE_SIGTERM", "1")
    opts = ServeOptions(served_model_name="m", seed=0)
    server = VllmServer(
        [str(FAKE_BIN / "vllm")], opts, port=free_tcp_port(), log_path=tmp_path / "v.log", stop_grace_s=0.5,
        say=lambda _: None,
    )
    with server.start("/m"):
        (state,) = fake_vllm.states()
        assert _running(state["pid"])
    assert fake_vllm.survivors(wait_s=0) == []
    assert server.proc is None and procs.find(tag="vllm-server") == []


EXIT_SCRIPT = """
import sys
from astuner.config.schema_rollout import VllmEngineConfig
from astuner.engine.vllm_engine import build_vllm_engine
engine = build_vllm_engine(VllmEngineConfig(port={port}), "/m", seed=0, log_dir={log_dir!r}, max_model_len=None, say=print)
print("ready", flush=True)
sys.stdin.readline()
if sys.argv[1] == "raise":
    raise RuntimeError("workflow blew up")
"""


@pytest.mark.parametrize("mode", ["exit", "raise", "sigterm"])
def test_server_is_stopped_when_the_process_ends_without_closing_it(fake_vllm, tmp_path, mode):
    script = EXIT_SCRIPT.format(port=free_tcp_port(), log_dir=str(tmp_path / "run"))
    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script), mode], cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )
    try:
        assert child.stdout.readline().strip().startswith("astuner: starting vllm serve")
        while child.stdout.readline().strip() != "ready":
            assert child.poll() is None, child.stderr.read()
        assert len(fake_vllm.survivors(wait_s=0)) == 2
        if mode == "sigterm":
            child.send_signal(signal.SIGTERM)
        else:
            child.stdin.write("go\n")
            child.stdin.flush()
        code = child.wait(timeout=60)
    finally:
        child.kill()
    assert code == {"exit": 0, "raise": 1, "sigterm": -signal.SIGTERM}[mode]
    assert fake_vllm.survivors() == [] and fake_vllm.records() == []


def test_engine_processes_left_by_a_crashed_server_are_stopped(fake_vllm, tmp_path):
    engine = start_engine(tmp_path)
    (state,) = fake_vllm.states()
    os.kill(state["pid"], signal.SIGKILL)
    deadline = time.monotonic() + 10
    while engine.server.proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert engine.server.proc.returncode == -signal.SIGKILL and _running(state["child_pid"])
    engine.close()
    assert fake_vllm.survivors() == [] and fake_vllm.records() == []


def test_a_server_left_by_a_sigkilled_run_is_ended_by_kill_vllm(fake_vllm, tmp_path, capsys):
    from astuner.cli import main

    script = EXIT_SCRIPT.format(port=free_tcp_port(), log_dir=str(tmp_path / "run"))
    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script), "sigkill"], cwd=REPO, stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, text=True,
    )
    try:
        while child.stdout.readline().strip() != "ready":
            assert child.poll() is None
        child.kill()
        child.wait(timeout=30)
    finally:
        child.kill()
    assert len(fake_vllm.survivors(wait_s=1)) == 2 and len(fake_vllm.records()) == 1
    assert main(["--kill", "vllm"]) == 0
    assert "killed 1 astuner-started process(es)" in capsys.readouterr().out
    assert fake_vllm.survivors() == [] and fake_vllm.records() == []
