"""``from agentscope.tuner import ...`` without dspy: astuner's stand-in for agentscope.tuner.prompt_tune.

Each check runs in a fresh interpreter, because the import state it is about (whether
agentscope.tuner and the stand-in are loaded) is per process.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

from tests.conftest import REPO

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(importlib.util.find_spec("dspy") is not None, reason="dspy is installed: the stand-in is never used"),
]


def python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)


def test_without_the_stand_in_agentscope_tuner_fails_on_dspy():
    """Why the stand-in exists: the installed agentscope's tuner package imports dspy."""
    result = python("import agentscope.tuner")
    assert result.returncode != 0 and "No module named 'dspy'" in result.stderr


def test_the_stand_in_lets_agentscope_tuner_import_and_names_dspy_when_used():
    result = python(
        "import sys\n"
        "from astuner.tuner_compat import install, is_installed, MISSING_DSPY\n"
        "assert install() and is_installed() and not install()\n"
        "from agentscope.tuner import WorkflowOutput, JudgeOutput, PromptTuneConfig, tune_prompt, check_workflow_function\n"
        "assert WorkflowOutput.__module__ == 'agentscope.tuner._workflow' and JudgeOutput.__module__ == 'agentscope.tuner._judge'\n"
        "assert PromptTuneConfig.__module__ == 'agentscope.tuner.prompt_tune._config'\n"
        "assert 'dspy' not in sys.modules\n"
        "try:\n"
        "    import dspy\n"
        "    raise SystemExit('dspy must stay absent')\n"
        "except ModuleNotFoundError:\n"
        "    pass\n"
        "try:\n"
        "    tune_prompt(workflow_func=None)\n"
        "    raise SystemExit('tune_prompt must raise')\n"
        "except ImportError as exc:\n"
        "    assert str(exc) == MISSING_DSPY\n"
        "try:\n"
        "    import agentscope.tuner.prompt_tune._wrapper\n"
        "    raise SystemExit('the real dspy-backed module must still fail')\n"
        "except ModuleNotFoundError as exc:\n"
        "    assert exc.name == 'dspy'\n"
        "print('ok')\n"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_resolving_a_workflow_module_installs_the_stand_in(tmp_path):
    module = tmp_path / "flow.py"
    module.write_text("from agentscope.tuner import WorkflowOutput\n\nasync def flow(task, model):\n    return WorkflowOutput()\n")
    result = python(
        "from astuner.components import workflow_class\n"
        "from astuner.tuner_compat import is_installed\n"
        f"cls = workflow_class({str(module) + '->flow'!r})\n"
        "print(cls.__name__, is_installed())\n"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [f"FunctionWorkflow[{module}->flow]", "True"]
