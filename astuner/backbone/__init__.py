"""Backbones: ``debug`` (in-process, never trains), ``local`` (one-process GRPO), ``trinity`` (cluster).

Each backbone module exposes ``run(config, exp_dir, args) -> int`` (the process exit code).
They are imported lazily so that ``import astuner`` never pulls in Ray, vLLM or Trinity.
"""

from __future__ import annotations

import importlib
from typing import Callable

_MODULES = {"debug": "astuner.backbone.debug", "local": "astuner.backbone.local", "trinity": "astuner.backbone.trinity"}


def load_backbone(name: str) -> Callable | None:
    """The ``run`` function of backbone ``name``, or None when this version does not have it."""
    module = _MODULES.get(name)
    if module is None:
        return None
    return importlib.import_module(module).run
