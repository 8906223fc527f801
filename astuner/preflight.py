"""Everything a run's config names is checked before the run creates anything.

A config error must not leave an experiment folder behind, and must be reported fast: before
this module, ``module->Class`` strings and dataset files were only read by the backbone, after the
folder existed and after torch, transformers and agentscope had been imported (10–14 s on a busy
machine). ``check_config`` runs in two stages:

1. Light (no torch, transformers or agentscope): the YAML and every key (``load_config_for_run``:
   schema, cross-key rules, input paths resolved against the config's folder and present); the
   workflow's and judge's modules located without being run (``astuner.resolve.locate``); the task
   files of a ``jsonl_dataset_file`` reader read in full; the scripted replies file parsed.
2. Only when stage 1 passed: the workflow and judge imported (this runs their modules, which
   usually import agentscope) and checked to be a workflow and a judge, as every backbone loads
   them (``astuner.components``: a class, or an agentscope.tuner-style function whose signature
   agentscope's checker accepts).

Every problem is a ``ConfigError``: one line with the file and the key path (exit code 2).

A ``model.path`` or Hugging Face ``dataset_path`` that can only be a local folder (absolute,
relative with a ``./``, or two or more ``/``) must exist (``config.paths``). Not checked here: Hub
ids and environment services (reading them may need the network), and whether ``model.path`` holds
a loadable model and tokenizer (that needs transformers); the backbone reports those (still exit
code 2), after the folder exists. Task files are read twice (here and by the
backbone), which costs time on very large files.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from astuner.config import ConfigError
from astuner.config.errors import format_path
from astuner.config.loader import LoadedConfig, load_config_for_run

SPEC_KEYS = (("rollout", "agentscope_workflow"), ("task_judge", "judge_protocol"))


def check_config(conf: Path, overrides: Sequence[str], backbone: str) -> LoadedConfig:
    """Load ``conf`` for a run and check everything it names; raises ``ConfigError``."""
    loaded = load_config_for_run(conf, overrides, backbone=backbone)
    _check_light(loaded)
    _check_classes(loaded)
    return loaded


def _check_light(loaded: LoadedConfig) -> None:
    from astuner.resolve import ResolveError, locate

    a = loaded.config.astuner
    for key in SPEC_KEYS:
        try:
            locate(_spec(loaded, key))
        except ResolveError as exc:
            raise _error(loaded, key, str(exc)) from None
    if a.task_reader.type == "jsonl_dataset_file":
        _check_task_files(loaded)
    if a.rollout.engine.type == "scripted":
        from astuner.engine.base import EngineError
        from astuner.engine.scripted_engine import load_script

        key = ("rollout", "engine", "scripted", "path")
        if not a.rollout.engine.scripted.path:
            engine_type = format_path([loaded.root_name, "rollout", "engine", "type"])
            raise _error(loaded, key, f"required when {engine_type} is 'scripted'")
        try:
            load_script(Path(a.rollout.engine.scripted.path))
        except EngineError as exc:
            raise _error(loaded, key, str(exc)) from None


def _check_task_files(loaded: LoadedConfig) -> None:
    """Read every task of both splits, so a broken line fails now and names its file and line."""
    from astuner.task_reader import TaskReaderError, read_task_file

    block = loaded.config.astuner.task_reader.jsonl_dataset_file
    for split in ("training", "validation"):
        path = getattr(block, split).file_path
        key = ("task_reader", "jsonl_dataset_file", split, "file_path")
        if not path:
            if split == "training":
                raise _error(loaded, key, "empty: a jsonl_dataset_file reader needs a training file")
            continue
        try:
            read_task_file(path)
        except TaskReaderError as exc:
            raise _error(loaded, key, str(exc)) from None


def _check_classes(loaded: LoadedConfig) -> None:
    """Import the workflow and the judge as every backbone does (``astuner.components``): each must be
    the kind of object the rollout runner calls (a class, or an agentscope.tuner-style function)."""
    from astuner.components import judge_class, workflow_class
    from astuner.resolve import ResolveError

    for key, load in ((SPEC_KEYS[0], workflow_class), (SPEC_KEYS[1], judge_class)):
        try:
            load(_spec(loaded, key))
        except ResolveError as exc:
            raise _error(loaded, key, str(exc)) from None


def _spec(loaded: LoadedConfig, key: tuple[str, str]) -> str:
    return getattr(getattr(loaded.config.astuner, key[0]), key[1])


def _error(loaded: LoadedConfig, key: tuple[str, ...], message: str) -> ConfigError:
    return ConfigError(loaded.source, format_path([loaded.root_name, *key]), message)
