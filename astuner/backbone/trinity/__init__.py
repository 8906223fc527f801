"""The ``trinity`` backbone: astuner rollouts inside Trinity-RFT 0.6.0 on Ray (explorer/trainer, vLLM, GRPO).

``astuner --conf X.yaml --backbone=trinity --with-ray`` translates the config to a Trinity config
(``config.py``; saved as ``<exp_dir>/trinity_config.yaml``), registers astuner's workflow and task
reader as Trinity plugins (``plugins/``), starts or joins Ray (``astuner.ray_service``) and runs
Trinity (``launch.py``). Inside Trinity each task runs astuner's ``Rollouts`` with the model tuner
bound to Trinity's vLLM rollout model (``engine.py``, ``workflow.py``) and returns one Experience
per merged sample, trained with ``multi_step_grpo``. See docs/trinity.md.

Nothing here imports Trinity or Ray until ``run`` is called, so ``import astuner`` and the other
backbones work without the ``[trinity]`` extra.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import argparse

    from astuner.config.schema import Config


def run(config: Config, exp_dir: Path, args: argparse.Namespace | None = None) -> int:
    """CLI entry (``astuner.backbone.load_backbone("trinity")``); exit code 0 when Trinity succeeded.

    ``args`` is the command line; the launch reads its ``--with-ray``.
    """
    from astuner.backbone.runtime import SetupError

    try:
        import trinity  # noqa: F401
    except ImportError:
        raise SetupError(
            "--backbone=trinity needs Trinity-RFT 0.6.0, which is not installed: pip install -e '.[trinity]' "
            "(plus '.[vllm]' on GPU machines)"
        ) from None
    from astuner.backbone.trinity.launch import launch

    return launch(config, exp_dir, args)
