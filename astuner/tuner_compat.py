"""Makes ``from agentscope.tuner import WorkflowOutput, JudgeOutput`` work without dspy.

agentscope 1.0.21's ``agentscope/tuner/__init__.py`` imports its prompt-tuning subpackage
(``agentscope.tuner.prompt_tune``), whose ``_wrapper`` module does ``from dspy import ...`` at import
time. dspy belongs to agentscope's optional ``[tuner]`` extra, which astuner does not install (it
would pull in dspy, litellm and their dependencies for a feature no astuner run uses), so without
help the import that every agentscope.tuner-style workflow starts with fails with
``ModuleNotFoundError: No module named 'dspy'``.

``install()`` puts a stand-in for exactly one module into ``sys.modules``:
``agentscope.tuner.prompt_tune``, and only when dspy cannot be found and agentscope.tuner is not
imported yet. The stand-in

- exports ``PromptTuneConfig``: agentscope's own class, loaded from agentscope's
  ``prompt_tune/_config.py`` (pydantic only, no dspy) on first access;
- exports ``tune_prompt``, which raises ``ImportError`` saying that prompt tuning needs dspy
  (``pip install "agentscope[tuner]"``);
- keeps the real package folder as its ``__path__``, so an explicit import of another of its
  modules (``_tune_prompt``, ``_wrapper``) runs the real code and fails on dspy as it would anyway.

Nothing else is replaced: ``dspy`` itself is not faked (``import dspy`` still fails, so libraries
that probe for it see it absent), and ``WorkflowOutput``, ``JudgeOutput``, ``check_workflow_function``,
``tune``, ``select_model`` and the config classes are agentscope's own. ``agentscope.tuner.tune``
still needs Trinity-RFT and runs agentscope's own Trinity path, not astuner's.

astuner calls ``install()`` before importing any module a config names (``astuner.components``),
so a workflow module imported by astuner may import agentscope.tuner freely. A script that imports
agentscope.tuner on its own, outside astuner, needs dspy or an explicit ``install()`` first.

Not guaranteed: that a later agentscope release still imports dspy only there; if its
``agentscope.tuner`` grows another dspy import, the import fails with dspy named, as it would
without the stand-in.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

TUNER = "agentscope.tuner"
PROMPT_TUNE = "agentscope.tuner.prompt_tune"
STAND_IN_FLAG = "__astuner_stand_in__"
MISSING_DSPY = (
    "agentscope.tuner.tune_prompt needs dspy, which is not installed (astuner replaced "
    "agentscope.tuner.prompt_tune with a stand-in so that agentscope.tuner imports without it); "
    'install it with: pip install "agentscope[tuner]"'
)


def install() -> bool:
    """Install the stand-in if agentscope.tuner would otherwise fail on dspy; True if installed now.

    Idempotent and cheap (no agentscope import): it only asks the import system where agentscope
    and dspy are.
    """
    if TUNER in sys.modules or PROMPT_TUNE in sys.modules:
        return False
    if importlib.util.find_spec("dspy") is not None:
        return False
    folder = _prompt_tune_folder()
    if folder is None:
        return False
    sys.modules[PROMPT_TUNE] = _stand_in(folder)
    return True


def is_installed() -> bool:
    """Whether ``agentscope.tuner.prompt_tune`` is astuner's stand-in."""
    return bool(getattr(sys.modules.get(PROMPT_TUNE), STAND_IN_FLAG, False))


def _prompt_tune_folder() -> Path | None:
    """agentscope's ``tuner/prompt_tune`` folder, found without importing agentscope; None if absent."""
    spec = importlib.util.find_spec("agentscope")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        folder = Path(location) / "tuner" / "prompt_tune"
        if (folder / "_config.py").is_file():
            return folder
    return None


def tune_prompt(*args: Any, **kwargs: Any) -> Any:
    """Stand-in for agentscope's dspy-based prompt tuning: always raises."""
    raise ImportError(MISSING_DSPY)


def _stand_in(folder: Path) -> ModuleType:
    module = ModuleType(PROMPT_TUNE, "astuner's stand-in for agentscope.tuner.prompt_tune (dspy is not installed).")
    module.__path__ = [str(folder)]
    module.__package__ = PROMPT_TUNE
    module.__all__ = ["PromptTuneConfig", "tune_prompt"]
    setattr(module, STAND_IN_FLAG, True)
    module.tune_prompt = tune_prompt

    def __getattr__(name: str) -> Any:
        if name == "PromptTuneConfig":
            config_class = importlib.import_module(f"{PROMPT_TUNE}._config").PromptTuneConfig
            module.PromptTuneConfig = config_class
            return config_class
        raise AttributeError(f"module {PROMPT_TUNE!r} has no attribute {name!r} ({MISSING_DSPY})")

    module.__getattr__ = __getattr__
    return module
