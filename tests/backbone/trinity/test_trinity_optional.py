"""Heavy backbones are optional (docs/architecture.md, contract 8): astuner works without Trinity, Ray and vLLM.

The subprocess blocks ``trinity``, ``ray``, ``vllm`` and ``verl`` with a ``sys.modules`` guard
(``sys.modules[name] = None``: importing them fails, ``importlib.util.find_spec`` reports them
absent — as if not installed, whether or not they are), then imports astuner, runs the
offline debug quick start through the CLI, and asks for the trinity backbone, which must fail
with an install hint (exit 2) rather than an ImportError traceback.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.integration

BLOCKED_RUN = textwrap.dedent(
    """
    import json, sys

    BLOCKED = ("trinity", "ray", "vllm", "verl")
    # None in sys.modules: "import ray" raises ModuleNotFoundError, importlib.util.find_spec("ray") is None
    for name in BLOCKED:
        sys.modules[name] = None

    import astuner
    from astuner.backbone import load_backbone
    from astuner.cli import main

    run = load_backbone("trinity")          # importing the backbone module needs no Trinity
    debug = main(["--conf", "tutorial/example_math_agent/math_agent_offline.yaml", "--backbone=debug",
                  "--exp-dir", sys.argv[1]])
    trinity = main(["--conf", "tutorial/example_math_agent/math_agent_offline.yaml", "--backbone=trinity",
                    "--exp-dir", sys.argv[1], "--skip-gpu-check"])
    loaded = sorted({n.split(".")[0] for n, m in sys.modules.items() if m is not None and n.split(".")[0] in BLOCKED})
    print("RESULT " + json.dumps({"debug": debug, "trinity": trinity, "loaded": loaded}))
    """
)


def test_astuner_and_debug_backbone_work_without_trinity_and_ray(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "ASTUNER_CACHE": str(tmp_path / "cache"),
           "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "AGENTSCOPE_DISABLE_CONSOLE_OUTPUT": "true"}
    done = subprocess.run(
        [sys.executable, "-c", BLOCKED_RUN, str(tmp_path / "exp")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, f"exit {done.returncode}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    result = json.loads(lines[-1][len("RESULT "):])
    assert result["debug"] == 0, done.stdout[-2000:]
    assert "success rate 0.875" in done.stdout
    assert result["trinity"] == 2
    assert "needs Trinity-RFT 0.6.0, which is not installed: pip install -e '.[trinity]'" in done.stderr
    assert result["loaded"] == []
