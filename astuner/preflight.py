"""Everything a run's config names is checked before the run creates anything.

A config error must not leave an experiment folder behind, and must be reported fast: the
backbone reads ``module->Class`` strings and dataset files only after the run's folder exists and
after torch, transformers and agentscope are imported (10–14 s on a busy machine), so this module
checks them first. ``check_config`` runs in two stages:

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
relative with a ``./``, or two or more ``/``) must exist (``config.paths``). A ``model.path`` of the
form of a Hub id must be in the local Hugging Face cache when the Hub is offline (``HF_HUB_OFFLINE``
or ``TRANSFORMERS_OFFLINE`` set), since nothing could download it; an ``env_service`` reader's
``env_url`` must accept a TCP connection (3 s). Not checked here: Hub ids while online and Hub
dataset ids (that needs the network or the datasets cache layout), whether the service behind
``env_url`` speaks the protocol, and whether ``model.path`` holds a loadable model and tokenizer
(that needs transformers); the backbone reports those (still exit code 2), after the folder exists. Task files are read twice (here and by the
backbone), which costs time on very large files.
"""

from __future__ import annotations

import os
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
    if backbone == "local":
        _check_trackers(loaded)
    _check_remote(loaded)
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


def _check_trackers(loaded: LoadedConfig) -> None:
    """The local backbone feeds every tracker listed in ``trainer_common.logger``: each must be installed."""
    from astuner.tracking.names import TrackerUnavailable, check_trackers

    try:
        check_trackers(loaded.config.astuner.trainer_common.logger)
    except TrackerUnavailable as exc:
        raise _error(loaded, ("trainer_common", "logger"), str(exc).removeprefix("trainer_common.logger: ")) from None


def _check_remote(loaded: LoadedConfig) -> None:
    """A Hub model id that an offline run could not download; an environment service that does not answer."""
    from astuner.config.paths import could_be_hub_id

    a = loaded.config.astuner
    model = (a.model.path or "").strip()
    offline = [v for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE") if os.environ.get(v, "").lower() in ("1", "true", "yes")]
    if offline and could_be_hub_id(model):
        from huggingface_hub import try_to_load_from_cache

        if not isinstance(try_to_load_from_cache(model, "config.json"), str):
            raise _error(loaded, ("model", "path"), f"{model!r} is not a local folder and, with {offline[0]} set, not in "
                         "the Hugging Face cache either: download it first or give a local folder")
    if a.task_reader.type == "env_service":
        url = a.task_reader.env_service.env_url
        problem = _unreachable(url)
        if problem:
            raise _error(loaded, ("task_reader", "env_service", "env_url"),
                         f"nothing answers at {url} ({problem}): start the environment service first")


def _unreachable(url: str, timeout_s: float = 3.0) -> str:
    """Why a TCP connection to ``url``'s host and port failed; empty when it succeeded."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        return str(exc)
    if not parts.hostname:
        return "no host in the URL"
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout_s):
            return ""
    except OSError as exc:
        return exc.strerror or type(exc).__name__


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
