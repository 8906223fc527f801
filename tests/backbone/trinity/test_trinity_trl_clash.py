"""An installed trl that Trinity's trainer cannot import stops the launch in one line, before Ray.

Trinity-RFT 0.6.0's trainer imports ``trl.experimental.ppo`` whenever ``trl`` is importable; with
trl 1.16.0 the trainer actor died minutes into a GPU run (2026-12-06). Fake ``trl`` packages on
``sys.path`` stand for the installed versions here; no Trinity is needed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from astuner.backbone.runtime import SetupError
from astuner.backbone.trinity.launch import check_before_launch, trl_clash
from astuner.config import load_config
from tests.backbone.trinity.fixtures import write_offline_yaml


def fake_trl(root: Path, version: str, with_ppo: bool) -> None:
    pkg = root / "trl"
    (pkg / "experimental").mkdir(parents=True)
    (pkg / "__init__.py").write_text(f"__version__ = {version!r}\n")
    (pkg / "experimental" / "__init__.py").write_text("")
    if with_ppo:
        (pkg / "experimental" / "ppo").mkdir()
        (pkg / "experimental" / "ppo" / "__init__.py").write_text("")
    meta = root / f"trl-{version}.dist-info"
    meta.mkdir()
    (meta / "METADATA").write_text(f"Metadata-Version: 2.1\nName: trl\nVersion: {version}\n")


@pytest.fixture
def installed(tmp_path, monkeypatch):
    """Install a fake trl of the given version: ``installed(version, with_ppo)``."""
    for name in [m for m in sys.modules if m == "trl" or m.startswith("trl.")]:
        monkeypatch.delitem(sys.modules, name)

    def install(version: str, with_ppo: bool) -> None:
        root = tmp_path / "site"
        fake_trl(root, version, with_ppo)
        monkeypatch.syspath_prepend(str(root))

    yield install
    for name in [m for m in sys.modules if m == "trl" or m.startswith("trl.")]:
        del sys.modules[name]


def test_trl_without_experimental_ppo_is_named_with_its_version(installed):
    installed("1.16.0", with_ppo=False)
    message = trl_clash()
    assert message is not None and "trl 1.16.0" in message and "trl.experimental.ppo" in message
    assert "\n" not in message


def test_trl_with_experimental_ppo_passes(installed):
    installed("0.29.0", with_ppo=True)
    assert trl_clash() is None


def test_launch_check_refuses_before_anything_starts(installed, tmp_path):
    installed("1.16.0", with_ppo=False)
    config = load_config(write_offline_yaml(tmp_path), backbone="trinity")
    with pytest.raises(SetupError, match=r"trl 1\.16\.0 is installed"):
        check_before_launch(config)
