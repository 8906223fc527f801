"""``module->Attr`` resolution: dotted and file forms, the astune alias, and every failure named clearly."""

from __future__ import annotations

import sys
import textwrap
import threading
from pathlib import Path

import pytest

import astuner.config.schema
from astuner.resolve import ResolveError, locate, resolve, split_spec


def write_module(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    return path


def resolve_error(spec: str) -> str:
    with pytest.raises(ResolveError) as info:
        resolve(spec)
    text = str(info.value)
    assert repr(spec) in text
    return text


def test_dotted_form():
    assert resolve("astuner.config.schema->Config") is astuner.config.schema.Config


def test_astune_alias_resolves_to_astuner():
    assert resolve("astune.config.schema->Config") is astuner.config.schema.Config
    assert resolve("astune->__version__") == sys.modules["astuner"].__version__


def test_file_form_absolute_and_relative_share_one_module(tmp_path, monkeypatch):
    write_module(tmp_path / "agents" / "math_agent.py", "class ExampleMathLearn:\n    pass\n")
    monkeypatch.chdir(tmp_path)
    by_relative = resolve("agents/math_agent.py->ExampleMathLearn")
    by_absolute = resolve(f"{tmp_path / 'agents' / 'math_agent.py'}->ExampleMathLearn")
    assert by_relative is by_absolute
    assert sys.modules[by_relative.__module__].ExampleMathLearn is by_relative


def test_two_files_with_the_same_basename_stay_apart(tmp_path):
    first = write_module(tmp_path / "a" / "agent.py", "NAME = 'a'\n")
    second = write_module(tmp_path / "b" / "agent.py", "NAME = 'b'\n")
    assert resolve(f"{first}->NAME") == "a"
    assert resolve(f"{second}->NAME") == "b"
    assert resolve(f"{first}->NAME") == "a"


def test_dotted_module_in_working_directory(tmp_path, monkeypatch):
    write_module(tmp_path / "my_pkg_for_resolve" / "__init__.py", "")
    write_module(tmp_path / "my_pkg_for_resolve" / "judge.py", "class MyJudge:\n    pass\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", ".", str(tmp_path))])
    assert resolve("my_pkg_for_resolve.judge->MyJudge").__name__ == "MyJudge"


def test_missing_module_names_it_and_the_search_path():
    text = resolve_error("no_such_pkg_xyz.agent->Agent")
    assert "module 'no_such_pkg_xyz.agent' not found" in text
    assert "working directory" in text and "sys.path" in text


def test_missing_submodule_of_existing_package():
    text = resolve_error("astuner.no_such_module->X")
    assert "module 'astuner.no_such_module' not found" in text


def test_missing_astune_module_says_how_it_was_read():
    text = resolve_error("astune.task_judge.no_such_judge->J")
    assert "read 'astune.task_judge.no_such_judge' as 'astuner.task_judge.no_such_judge'" in text


def test_path_without_py_gets_a_hint():
    assert "a file path must end in '.py'" in resolve_error("some/dir/agent->Agent")


def test_missing_file(tmp_path):
    text = resolve_error(f"{tmp_path / 'nope.py'}->Agent")
    assert "file not found" in text and str(tmp_path / "nope.py") in text


def test_missing_class_lists_what_exists(tmp_path):
    path = write_module(tmp_path / "agent_mod.py", "class ExampleMathLearn:\n    pass\n\ndef helper():\n    pass\n")
    text = resolve_error(f"{path}->ExampleMathLern")
    assert "has no attribute 'ExampleMathLern'" in text
    assert "did you mean 'ExampleMathLearn'?" in text
    assert "it defines: ExampleMathLearn, helper" in text


def test_missing_class_in_dotted_module():
    assert "has no attribute 'Konfig'" in resolve_error("astuner.config.schema->Konfig")


@pytest.mark.parametrize("spec", ["astuner.config.schema.Config", "a->b->C", "->C", "a.b->", ""])
def test_malformed_specs(spec):
    with pytest.raises(ResolveError) as info:
        split_spec(spec)
    assert repr(spec) in str(info.value)
    assert isinstance(info.value, ValueError)


def test_import_error_inside_file_module_is_reported_as_such(tmp_path):
    path = write_module(tmp_path / "needs_dep.py", "import definitely_missing_dependency_xyz\nclass A:\n    pass\n")
    text = resolve_error(f"{path}->A")
    assert "importing" in text and "failed" in text
    assert "No module named 'definitely_missing_dependency_xyz'" in text
    assert "not found" not in text.split("failed")[0]


def test_import_error_inside_dotted_module_is_reported_as_such(tmp_path, monkeypatch):
    write_module(tmp_path / "pkg_with_bad_dep" / "__init__.py", "")
    write_module(tmp_path / "pkg_with_bad_dep" / "agent.py", "from missing_dep_abc import thing\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ResolveError) as info:
        resolve("pkg_with_bad_dep.agent->Agent")
    text = str(info.value)
    assert "importing module 'pkg_with_bad_dep.agent' failed: ModuleNotFoundError:" in text
    assert "No module named 'missing_dep_abc'" in text
    assert "something that module imports is missing" in text
    assert isinstance(info.value.__cause__, ModuleNotFoundError)


def test_failed_file_module_is_not_cached(tmp_path):
    path = write_module(tmp_path / "flaky.py", "raise RuntimeError('boom')\n")
    assert "RuntimeError: boom" in resolve_error(f"{path}->X")
    write_module(path, "X = 1\n")
    assert resolve(f"{path}->X") == 1


def test_concurrent_resolution_loads_a_file_once(tmp_path):
    body = "import time\nLOADS = []\nLOADS.append(1)\ntime.sleep(0.05)\nclass C:\n    pass\n"
    path = write_module(tmp_path / "counted.py", body)
    results: list[type] = []
    threads = [threading.Thread(target=lambda: results.append(resolve(f"{path}->C"))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4 and len(set(results)) == 1
    assert sys.modules[results[0].__module__].LOADS == [1]


def test_locate_finds_a_module_without_running_it(tmp_path, monkeypatch):
    write_module(tmp_path / "pkg_to_locate" / "__init__.py", "")
    write_module(tmp_path / "pkg_to_locate" / "heavy.py", "raise RuntimeError('must not run')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    locate("pkg_to_locate.heavy->Anything")
    assert "pkg_to_locate.heavy" not in sys.modules
    with pytest.raises(ResolveError, match="module 'pkg_to_locate.nope' not found"):
        locate("pkg_to_locate.nope->X")
    with pytest.raises(ResolveError, match="its package 'no_such_pkg_xyz' does not exist"):
        locate("no_such_pkg_xyz.agent->Agent")


def test_locate_file_form_and_malformed_specs(tmp_path):
    path = write_module(tmp_path / "flow.py", "raise RuntimeError('must not run')\n")
    locate(f"{path}->Flow")
    with pytest.raises(ResolveError, match="file not found"):
        locate(f"{tmp_path / 'gone.py'}->Flow")
    with pytest.raises(ResolveError, match="exactly one '->'"):
        locate("astuner.config.schema.Config")
