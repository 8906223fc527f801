"""``--with-ray`` / ``--kill ray`` with a real local Ray head, and the GPU pre-flight check.

The Ray tests start a real ``ray start --head`` (the ``ray`` CLI comes with the ``[trinity]``
extra) on free ports, with a private temp dir and process registry, so they never touch another
Ray on the machine; they are skipped, saying so, when the ``ray`` CLI is not installed.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from astuner import procs
from astuner.ray_service import GpuCheckError, check_gpus, parse_gpu_lines, ray_cli
from tests.conftest import REPO
from tests.backbone.trinity.fixtures import TRINITY_MISSING, write_offline_yaml

pytestmark = pytest.mark.integration

NEEDS_RAY = pytest.mark.skipif(ray_cli() is None, reason="the 'ray' CLI is not installed (pip install -e '.[trinity]')")


def test_gpu_lines_need_95_percent_free_everywhere():
    ok = parse_gpu_lines("0, NVIDIA H100 80GB HBM3, 81559, 3\n1, NVIDIA H100 80GB HBM3, 81559, 1000\n")
    assert ok == ["GPU 0 NVIDIA H100 80GB HBM3: 100% free", "GPU 1 NVIDIA H100 80GB HBM3: 99% free"]
    with pytest.raises(GpuCheckError, match=r"GPU 1 \(40000/81559 MiB used\)"):
        parse_gpu_lines("0, H100, 81559, 3\n1, H100, 81559, 40000\n")
    with pytest.raises(GpuCheckError, match="lists no GPU"):
        parse_gpu_lines("")
    with pytest.raises(GpuCheckError, match="cannot read"):
        parse_gpu_lines("garbage")


def test_missing_nvidia_smi_is_one_clear_line(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(GpuCheckError) as info:
        check_gpus()
    assert "no NVIDIA GPU found" in str(info.value) and "--skip-gpu-check" in str(info.value)
    assert "--backbone=local" in str(info.value) and "--backbone=debug" in str(info.value)  # what works without one


def test_multi_node_settings_come_from_master_addr_and_port(monkeypatch):
    from astuner.ray_service import RayError, cluster_settings

    monkeypatch.delenv("MASTER_ADDR", raising=False)
    monkeypatch.delenv("RANK", raising=False)
    assert cluster_settings() is None  # single node
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", "6380")
    assert cluster_settings() == ("127.0.0.1", 6380, True)  # this host is the master: it runs the head
    monkeypatch.setenv("MASTER_ADDR", "10.255.255.1")
    assert cluster_settings() == ("10.255.255.1", 6380, False)  # another host: join it
    monkeypatch.setenv("RANK", "0")
    assert cluster_settings() == ("10.255.255.1", 6380, True)
    monkeypatch.setenv("MASTER_PORT", "")
    with pytest.raises(RayError, match="MASTER_PORT"):
        cluster_settings()


def _free_ports(n: int) -> list[int]:
    """n distinct free ports: every socket stays bound until all are picked (one at a time could repeat)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _cli(args: list[str], env: dict, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "launcher.py", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture
def ray_env(tmp_path):
    """Environment for a private Ray head: free ports, a short temp dir, a private process registry."""
    temp = tempfile.mkdtemp(prefix="ar", dir="/tmp")  # Ray's socket paths must stay short
    port, client, dash, agent_http, agent_grpc, metrics, env_agent, node_mgr, obj_mgr = _free_ports(9)
    args = [
        f"--temp-dir={temp}", "--num-cpus=1", "--num-gpus=0", "--include-dashboard=false",
        f"--node-manager-port={node_mgr}", f"--object-manager-port={obj_mgr}",
        f"--ray-client-server-port={client}", f"--dashboard-port={dash}",
        f"--dashboard-agent-listen-port={agent_http}", f"--dashboard-agent-grpc-port={agent_grpc}",
        f"--metrics-export-port={metrics}", f"--runtime-env-agent-port={env_agent}",
    ]
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "MASTER_ADDR", "MASTER_PORT")},
        "ASTUNER_PROCS_DIR": str(tmp_path / "procs"),
        "ASTUNER_RAY_PORT": str(port),
        "ASTUNER_RAY_ARGS": " ".join(args),
        "ASTUNER_RAY_TIMEOUT_S": "180",
        "ASTUNER_CACHE": str(tmp_path / "cache"),
        "PYTHONPATH": str(REPO),
    }
    yield env, port
    done = _cli(["--kill", "ray"], env)  # never leave a Ray behind, even when the test failed
    assert done.returncode == 0, done.stderr
    shutil.rmtree(temp, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


@NEEDS_RAY
def test_with_ray_starts_a_registered_head_and_kill_ray_stops_it(ray_env, tmp_path, monkeypatch):
    env, port = ray_env
    started = _cli(["--with-ray"], env)
    assert started.returncode == 0, started.stdout + started.stderr
    assert f"started Ray head 127.0.0.1:{port}" in started.stdout and "astuner --kill ray" in started.stdout
    monkeypatch.setenv("ASTUNER_PROCS_DIR", env["ASTUNER_PROCS_DIR"])
    (head,) = procs.find(tag="ray")
    tree = procs.descendants(head["pid"])
    assert head["kind"] == "ray" and head["extra"]["address"] == f"127.0.0.1:{port}"
    assert any(Path(f"/proc/{p}/comm").read_text().strip() == "raylet" for p in tree)
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        pass

    again = _cli(["--with-ray"], env)
    assert again.returncode == 0 and f"reusing Ray head 127.0.0.1:{port} (pid {head['pid']}" in again.stdout

    killed = _cli(["--kill", "ray"], env)
    assert killed.returncode == 0, killed.stderr
    assert f"killed 1 astuner-started process(es): [{head['pid']}]" in killed.stdout
    assert "ray stop" in killed.stdout  # ran it, or said why not (another Ray on this machine)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(_alive(p) for p in [head["pid"], *tree]):
        time.sleep(0.2)
    assert not [p for p in [head["pid"], *tree] if _alive(p)], "Ray processes astuner started survived --kill ray"
    assert list((tmp_path / "procs").glob("*.json")) == []


@NEEDS_RAY
@pytest.mark.skipif(TRINITY_MISSING, reason="trinity-rft is not installed (pip install -e '.[trinity]')")
def test_trinity_launch_stops_cleanly_on_a_cluster_without_gpus(ray_env, tmp_path):
    """The full launch up to Trinity's run: GPU check, Ray head, Trinity config checked, cluster GPUs counted."""
    env, port = ray_env
    conf = write_offline_yaml(tmp_path)
    no_gpu = _cli(["--conf", str(conf), "--backbone=trinity", "--exp-dir", str(tmp_path / "exp"), "--with-ray"], env)
    # no nvidia-smi here: exit 2 before anything starts (on a GPU machine: the 0-GPU Ray head stops it, exit 1)
    assert no_gpu.returncode in (1, 2)
    assert any(m in no_gpu.stderr for m in ("no NVIDIA GPU found", "GPUs in use", "has 0 GPU(s)")), no_gpu.stderr
    assert not (tmp_path / "exp").exists() or no_gpu.returncode == 1  # the GPU check comes first

    run = _cli(["--conf", str(conf), "--backbone=trinity", "--exp-dir", str(tmp_path / "exp"), "--with-ray",
                "--skip-gpu-check"], env)
    assert run.returncode == 1, run.stdout[-3000:] + run.stderr[-3000:]
    assert f"started Ray head 127.0.0.1:{port}" in run.stdout, run.stdout[-3000:] + run.stderr[-3000:]
    assert "Trinity config" in run.stdout and "checked by Trinity" in run.stdout
    assert "the Ray cluster has 0 GPU(s) but the config asks for 2" in run.stderr
    (exp,) = (tmp_path / "exp").iterdir()
    assert (exp / "trinity_config.yaml").exists() and (exp / "yaml_backup.yaml").exists()
    # the run stopped the Ray head it started: no record, no Ray process of it left
    assert "stopped the Ray head this run started" in run.stdout, run.stdout[-3000:]
    assert list((tmp_path / "procs").glob("*.json")) == []

    kept = _cli(["--conf", str(conf), "--backbone=trinity", "--exp-dir", str(tmp_path / "exp"), "--with-ray",
                 "--skip-gpu-check"], {**env, "ASTUNER_KEEP_RAY": "1"})
    assert kept.returncode == 1 and "ASTUNER_KEEP_RAY=1: the Ray head" in kept.stdout, kept.stdout[-3000:]
    records = [json.loads(p.read_text()) for p in (tmp_path / "procs").glob("*.json")]
    assert [r["tag"] for r in records] == ["ray"], "with ASTUNER_KEEP_RAY=1 the head stays up until --kill ray"


@pytest.mark.skipif(TRINITY_MISSING, reason="trinity-rft is not installed (pip install -e '.[trinity]')")
def test_trinity_launch_without_ray_says_how_to_start_it(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "MASTER_ADDR", "MASTER_PORT")}
    env.update({"ASTUNER_PROCS_DIR": str(tmp_path / "procs"), "ASTUNER_CACHE": str(tmp_path / "cache"),
                "PYTHONPATH": str(REPO)})
    conf = write_offline_yaml(tmp_path)
    run = _cli(["--conf", str(conf), "--backbone=trinity", "--exp-dir", str(tmp_path / "exp"), "--skip-gpu-check"], env)
    assert run.returncode == 1, run.stdout[-2000:] + run.stderr[-2000:]
    # no Ray here: say how to start one (if some other Ray happens to run on this machine, its GPU count stops us)
    assert "start it with --with-ray or 'ray start --head'" in run.stderr or "GPU(s) but the config asks" in run.stderr
    (exp,) = (tmp_path / "exp").iterdir()
    assert (exp / "trinity_config.yaml").exists()
