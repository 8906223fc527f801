"""``--debugpy``/``--wait-for-client`` without a debugger: address parsing, one-line errors, their order,
and the tutorial's VSCode launch configuration. Nothing here listens (``tests/test_debugpy.py`` does)."""

from __future__ import annotations

import json
import re
import sys
import tomllib

import pytest

from astuner import debugging
from astuner.cli import build_parser, main
from astuner.debugging import DebugpyError, DebugpyRequest, listening_line, parse_address, request_from_flags
from tests.conftest import REPO

GOOD = "tutorial/example_math_agent/math_agent_offline.yaml"
LAUNCH = REPO / debugging.LAUNCH_JSON


@pytest.mark.parametrize("text, expected", [
    ("5678", ("127.0.0.1", 5678)),
    ("0", ("127.0.0.1", 0)),
    ("127.0.0.1:5678", ("127.0.0.1", 5678)),
    ("0.0.0.0:5678", ("0.0.0.0", 5678)),
    ("localhost:65535", ("localhost", 65535)),
    ("[::1]:5678", ("::1", 5678)),
])
def test_parse_address(text, expected):
    assert parse_address(text) == expected


@pytest.mark.parametrize("text, says", [
    ("abc", "the port must be a number"),
    ("70000", "the port must be a number"),
    ("host:-1", "the port must be a number"),
    ("host:", "the port must be a number"),
    (":5678", "empty host"),
    ("::1:5678", "IPv6 host in brackets"),
])
def test_parse_address_rejects_with_the_flag_named(text, says):
    with pytest.raises(DebugpyError, match=re.escape(says)) as err:
        parse_address(text)
    assert str(err.value).startswith("--debugpy: ") and "\n" not in str(err.value)


def test_request_from_flags():
    assert request_from_flags("", False) is None
    assert request_from_flags("9000", True) == DebugpyRequest("127.0.0.1", 9000, True)
    assert request_from_flags("10.0.0.2:9000", False) == DebugpyRequest("10.0.0.2", 9000, False)
    with pytest.raises(DebugpyError, match="--wait-for-client needs --debugpy"):
        request_from_flags("", True)


def test_listening_line_says_where_how_and_whether_it_waits():
    waiting = listening_line("127.0.0.1", 5678, waiting=True)
    assert "debugpy listening on 127.0.0.1:5678" in waiting and '"attach to astuner"' in waiting
    assert debugging.LAUNCH_JSON in waiting and "waiting for it before the run starts" in waiting
    assert "not loopback" not in waiting
    exposed = listening_line("0.0.0.0", 5678, waiting=False)
    assert "not loopback" in exposed and "the run starts now" in exposed
    assert "\n" not in waiting + exposed


def _one_error_line(capsys) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("astuner: error: "), captured.err
    assert "debugpy listening" not in captured.out
    return lines[0]


def test_wait_for_client_alone_is_a_one_line_error_and_creates_nothing(tmp_path, capsys):
    exp = tmp_path / "exp"
    assert main(["--conf", GOOD, "--backbone=debug", "--exp-dir", str(exp), "--wait-for-client"]) == 2
    assert "--wait-for-client needs --debugpy" in _one_error_line(capsys)
    assert not exp.exists()


def test_bad_address_is_a_one_line_error(tmp_path, capsys):
    assert main(["--conf", GOOD, "--backbone=debug", "--exp-dir", str(tmp_path / "exp"), "--debugpy", "nope"]) == 2
    assert "--debugpy: 'nope'" in _one_error_line(capsys)


def test_debugpy_missing_names_the_extra(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "debugpy", None)  # import machinery: "not installed"
    exp = tmp_path / "exp"
    assert main(["--conf", GOOD, "--backbone=debug", "--exp-dir", str(exp), "--debugpy", "5678"]) == 2
    assert 'debugpy is not installed; install it with: pip install "astuner[debug]"' in _one_error_line(capsys)
    assert not exp.exists()


def test_debugpy_without_conf_is_an_error_before_any_kill(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ASTUNER_PROCS_DIR", str(tmp_path / "procs"))
    assert main(["--kill", "nothing-matches-this", "--debugpy", "5678"]) == 2
    captured = capsys.readouterr()
    assert captured.err.strip() == "astuner: error: --debugpy needs --conf: it debugs a run"
    assert "astuner-started" not in captured.out  # --kill did not run


def test_a_bad_config_is_reported_before_debugpy_listens(tmp_path, monkeypatch, capsys):
    calls: list[DebugpyRequest] = []
    monkeypatch.setattr(debugging, "start", lambda request, *, backbone: calls.append(request))
    conf = tmp_path / "bad.yaml"
    conf.write_text("astuner:\n  rollout:\n    num_repet: 2\n")
    exp = tmp_path / "exp"
    code = main(["--conf", str(conf), "--backbone=debug", "--exp-dir", str(exp), "--debugpy", "0", "--wait-for-client"])
    assert code == 2 and calls == []
    assert "astuner.rollout.num_repet" in _one_error_line(capsys)
    assert not exp.exists()


def test_help_lists_the_flags():
    text = " ".join(build_parser().format_help().split())
    assert "--debugpy [HOST:]PORT" in text and "--wait-for-client" in text
    assert 'pip install "astuner[debug]"' in text


def _configurations() -> dict[str, dict]:
    return {c["name"]: c for c in json.loads(LAUNCH.read_text())["configurations"]}


def test_launch_json_attach_matches_the_readme_example():
    attach = _configurations()["attach to astuner"]
    assert attach["type"] == "debugpy" and attach["request"] == "attach"
    readme = (REPO / "README.md").read_text()
    command = re.search(r"astuner --conf tutorial/example_math_agent/math_agent_offline\.yaml --backbone=debug "
                        r"--debugpy (\d+) --wait-for-client", readme)
    assert command is not None, "README's Debugging example is missing"
    assert attach["connect"] == {"host": debugging.DEFAULT_HOST, "port": int(command.group(1))}


def test_launch_json_launch_runs_the_entry_points_module_on_the_offline_config():
    launch = _configurations()["launch astuner debug backbone"]
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert launch["request"] == "launch" and launch["module"] == scripts["astuner"].split(":")[0]
    folder = str(LAUNCH.parent.parent)  # what ${workspaceFolder} is when this folder is opened in VSCode
    cwd = launch["cwd"].replace("${workspaceFolder}", folder)
    assert (REPO / cwd).resolve() == REPO.resolve()
    args = build_parser().parse_args([a.replace("${workspaceFolder}", folder) for a in launch["args"]])
    assert args.backbone == "debug" and (REPO / args.conf).resolve() == (REPO / GOOD).resolve()
