"""The command line: exit codes, one-line config errors, launcher.py, and a --kill that spares strangers."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from astuner.cli import main
from astuner.procs import kill_registered, register
from tests.conftest import REPO

pytestmark = pytest.mark.integration

GOOD = "tutorial/example_math_agent/math_agent_offline.yaml"

MALFORMED = {
    "unknown_key": ("astuner:\n  rollout:\n    num_repet: 2\n", "astuner.rollout.num_repet"),
    "wrong_type": ("astuner:\n  rollout:\n    num_repeat: six\n", "astuner.rollout.num_repeat"),
    "bad_literal": ("astuner:\n  rollout:\n    engine:\n      type: vllm2\n", "astuner.rollout.engine.type"),
    "missing_root": ("rollout:\n  num_repeat: 2\n", "astuner"),
    "both_roots": ("astuner: {}\nastune: {}\n", "astune"),
    "yaml_syntax": ("astuner:\n  rollout: [unclosed\n", "line"),
    "not_a_mapping": ("- just\n- a list\n", "mapping"),
    "length_invariant": ("astuner:\n  rollout:\n    max_model_len: 100\n", "astuner.rollout.max_model_len"),
    "unknown_top_level": ("astuner: {}\nverl: {}\n", "verl"),
    "nested_unknown": ("astune:\n  task_judge:\n    judge_protocl: x->Y\n", "astune.task_judge.judge_protocl"),
    "bad_workflow_path": (
        "astuner:\n  model: {path: 'astuner://tiny'}\n  task_reader: {type: random_dummy}\n"
        "  rollout: {agentscope_workflow: 'no.such.module->Flow'}\n",
        "astuner.rollout.agentscope_workflow",
    ),
    "no_arrow": (
        "astuner:\n  model: {path: 'astuner://tiny'}\n  task_reader: {type: random_dummy}\n"
        "  task_judge: {judge_protocol: 'astuner.task_judge.math_answer_as_judge.MathAnswerAsJudge'}\n",
        "astuner.task_judge.judge_protocol",
    ),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_config_exits_2_with_one_line_naming_the_key(name, tmp_path, monkeypatch, capsys):
    text, key = MALFORMED[name]
    conf = tmp_path / f"{name}.yaml"
    conf.write_text(text)
    monkeypatch.chdir(REPO)
    monkeypatch.setenv("ASTUNER_CACHE", str(tmp_path / "cache"))
    code = main(["--conf", str(conf), "--backbone=debug", "--exp-dir", str(tmp_path / "exp")])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1, err
    assert key in err and conf.name in err


def test_usage_errors_exit_2(capsys):
    assert main(["--backbone=debug"]) == 2
    assert main(["--conf", GOOD, "--backbone=nope"]) == 2
    assert main(["--conf", "x.txt", "--backbone=debug"]) == 2
    assert main(["--conf", GOOD, "--backbone=trinity"]) == 2
    errs = capsys.readouterr().err.strip().splitlines()
    assert len(errs) == 4 and all(e.startswith("astuner: error: ") for e in errs)


def test_version_and_backbone_choices(capsys):
    from astuner import __version__

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.strip() == f"astuner {__version__}"
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "--backbone {debug,trinity,local}" in " ".join(capsys.readouterr().out.split())


def test_launcher_py_and_console_script_share_the_parser():
    outs = [
        subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=True).stdout
        for cmd in (["astuner", "--help"], [sys.executable, "launcher.py", "--help"])
    ]
    assert outs[0] == outs[1]
    for flag in ("--conf", "--backbone", "--exp-dir", "--with-ray", "--with-logview", "--kill", "--autokill", "--db"):
        assert flag in outs[0]


def _sleeper() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)


def test_kill_ends_only_registered_processes(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ASTUNER_PROCS_DIR", str(tmp_path / "procs"))
    decoy, ours = _sleeper(), _sleeper()
    try:
        register(ours.pid, "worker", [sys.executable, "-c", "sleep"])
        assert main(["--kill", "python"]) == 0
        assert ours.wait(timeout=10) is not None
        time.sleep(0.2)
        assert decoy.poll() is None, "a python process astuner did not start was killed"
        assert "killed 1" in capsys.readouterr().out
        assert kill_registered("python") == []  # the record is gone
    finally:
        for p in (decoy, ours):
            if p.poll() is None:
                p.kill()
                p.wait()


def test_kill_never_signals_the_caller(tmp_path, monkeypatch):
    monkeypatch.setenv("ASTUNER_PROCS_DIR", str(tmp_path / "procs"))
    register(os.getpid(), "self", [sys.executable, "pytest"])
    assert kill_registered("python|pytest|self") == []
    assert Path(f"/proc/{os.getpid()}").exists()


def test_with_logview_serves_during_the_run_and_stops_after(tmp_path, monkeypatch, capsys):
    import re
    import urllib.error
    import urllib.request

    monkeypatch.chdir(REPO)
    monkeypatch.setenv("ASTUNER_CACHE", str(tmp_path / "cache"))
    code = main(["--conf", GOOD, "--backbone=debug", "--with-logview", "--exp-dir", str(tmp_path / "exp"),
                 "astuner.logview.port=18731", "astuner.debug.debug_first_n_tasks=1"])
    out = capsys.readouterr().out
    assert code == 0
    url = re.search(r"logview at (http://127\.0\.0\.1:\d+/)", out).group(1)
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(url + "api/experiments", timeout=2)
