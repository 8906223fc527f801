"""What astuner keeps inside each Trinity process (explorer, workflow runners): config, tokenizer, judge.

Trinity runs astuner's reader and workflow in Ray actors, possibly on other nodes. They find the
run's resolved astuner config through ``ASTUNER_CONFIG_REDIRECT`` (set by the launch in every
actor's environment, and also passed as the taskset's ``path`` / ``workflow_args``) and load it
once per process. ``ASTUNER_LAUNCH_DIR`` is where ``astuner`` was started: Ray starts actors in the
Ray node's working directory, so a process that finds that directory switches to it (and puts it
on ``sys.path``) before reading the config, so that relative paths in the config (task files,
``path/file.py->Class`` workflows, scripted replies) mean what they meant at launch. Nothing here
imports Trinity.
"""

from __future__ import annotations

import os
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from astuner.backbone.trinity.config import CONFIG_ENV, LAUNCH_DIR_ENV

if TYPE_CHECKING:
    from trinity.common.config import GenerationConfig

    from astuner.chat_template import ChatTemplate
    from astuner.config.schema import Config
    from astuner.engine.base import Engine
    from astuner.rollout import Rollouts

_lock = threading.Lock()
_runtimes: dict[str, "WorkerRuntime"] = {}


class WorkerSetupError(RuntimeError):
    """The astuner config or what it names cannot be loaded inside a Trinity process."""


def enter_launch_dir(explicit: str | None = None) -> None:
    """Work in the launch directory (``explicit``, else ``$ASTUNER_LAUNCH_DIR``; see the module docstring)."""
    launch = explicit or os.environ.get(LAUNCH_DIR_ENV)
    if not launch or not Path(launch).is_dir():
        return
    if launch not in sys.path:
        sys.path.insert(0, launch)
    if Path.cwd() != Path(launch):
        os.chdir(launch)


def config_path(explicit: str | None = None) -> str:
    """The run's ``yaml_backup.yaml``: ``explicit`` (from the taskset) or ``$ASTUNER_CONFIG_REDIRECT``."""
    path = explicit or os.environ.get(CONFIG_ENV)
    if not path:
        raise WorkerSetupError(
            f"astuner's Trinity plugin needs the run's config: set {CONFIG_ENV} (the launch does) "
            "or the taskset's path / workflow_args.astuner_config"
        )
    if not Path(path).is_file():
        raise WorkerSetupError(f"astuner config {path} does not exist on this node (it must be on a shared filesystem)")
    return path


def load_astuner_config(path: str, launch_dir: str | None = None) -> Config:
    """The run's typed config, loaded from its ``yaml_backup.yaml`` (the one form it crosses Ray in)."""
    from astuner.config import ConfigError, load_config

    enter_launch_dir(launch_dir)
    try:
        return load_config(path, backbone="trinity")
    except ConfigError as exc:
        raise WorkerSetupError(str(exc)) from None


@dataclass
class WorkerRuntime:
    """Everything a rollout needs except the engine, built once per process and config."""

    config: Config
    tokenizer: Any
    template: ChatTemplate
    workflow_cls: type
    judge: Any

    def rollouts(self, engine: Engine, rollout_args: GenerationConfig | None = None, salt: object = 0) -> Rollouts:
        """A ``Rollouts`` on ``engine`` sampling with the task's ``rollout_args`` (Trinity's
        ``GenerationConfig``: its temperature, top_p and top_k where set; None keeps astuner's
        ``rollout`` values). ``salt`` (the explore step) varies the per-rollout sampling seeds between steps."""
        from astuner.rollout import Rollouts

        updates: dict[str, float | int] = {}
        if rollout_args is not None:
            chosen = {"temperature": rollout_args.temperature, "top_p": rollout_args.top_p, "top_k": rollout_args.top_k}
            updates = {key: value for key, value in chosen.items() if value is not None}
        base = Rollouts(self.config, engine, self.template, self.workflow_cls, self.judge)
        return base.variant(seed_salt=_salt(salt), **updates)


def _salt(value: object) -> int:
    import zlib

    return zlib.crc32(str(value).encode()) & 0x7FFFFFFF


def runtime(path: str | None = None, launch_dir: str | None = None) -> WorkerRuntime:
    """The cached ``WorkerRuntime`` for this process and config file."""
    enter_launch_dir(launch_dir)
    path = config_path(path)
    with _lock:
        found = _runtimes.get(path)
        if found is None:
            found = _runtimes[path] = _build(path, launch_dir)
    return found


def _build(path: str, launch_dir: str | None = None) -> WorkerRuntime:
    from astuner.backbone.runtime import model_path
    from astuner.chat_template import ChatTemplate, ChatTemplateError
    from astuner.components import judge_class, workflow_class
    from astuner.resolve import ResolveError

    config = load_astuner_config(path, launch_dir)
    a = config.astuner
    try:
        workflow_cls = workflow_class(a.rollout.agentscope_workflow)
        judge_cls = judge_class(a.task_judge.judge_protocol)
    except ResolveError as exc:
        raise WorkerSetupError(f"{path}: {exc}") from None
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path(a.model.path))
    try:
        template = ChatTemplate(tokenizer)
    except ChatTemplateError as exc:
        raise WorkerSetupError(f"astuner.model.path: {exc}") from None
    return WorkerRuntime(config, tokenizer, template, workflow_cls, judge_cls(config))


def tasks_for_split(config: Config, split: str) -> list[dict]:
    """The astuner tasks of ``split`` as plain dicts (``raw_task`` rows)."""
    from astuner.task_reader import build_task_reader

    a = config.astuner
    reader = build_task_reader(a.task_reader, seed=a.seed, shuffle=a.task_reader.shuffle)
    name = (split or "").lower()
    tasks = []
    if "train" in name:
        tasks.extend(reader.get_training_tasks())
    if "val" in name or "test" in name:
        tasks.extend(reader.get_validation_tasks())
    if "train" not in name and "val" not in name and "test" not in name:
        raise ValueError(f"astuner taskset split {split!r}: use 'train' or 'validation'")
    return [t.model_dump(mode="json") for t in tasks]
