"""Loading a user's YAML into a validated ``Config``, and laying out the experiment directory.

The user file names only what differs from the defaults; the schema supplies the rest (the user
file wins, blocks merge key by key). Upstream composed this with Hydra and needed the
``hydra:``/``defaults:`` boilerplate and the repository as working directory; here that
boilerplate is accepted and ignored, and relative input paths in the file resolve against the
file's own folder (``astuner.config.paths``; the working directory only as a noted fallback).
Seed-era spellings are accepted as ``astuner.config.compat`` lists them; upstream keys astuner does
not implement are dropped at upstream's default and refused otherwise (``astuner.config.unsupported``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from astuner.config import compat
from astuner.config.base import RenameConflict, apply_renames, child_block
from astuner.config.errors import (
    ConfigError,
    UnsupportedKeyError,
    format_path,
    from_validation_error,
    override_for,
    show_value,
    unknown_key_message,
)
from astuner.config.paths import PathBases, PathReport, resolve_paths
from astuner.config.schema import AstunerConfig, Config
from astuner.config.unsupported import drop_unsupported, is_unsupported
from astuner.config.yaml_io import dump_yaml, parse_scalar, read_yaml

ROOT_KEY = "astuner"
(OLD_ROOT_KEY,) = compat.ROOT_ALIASES
IGNORED_TOP_LEVEL = tuple(compat.IGNORED_TOP_LEVEL)
"""Hydra boilerplate that every upstream YAML carries; meaningless here."""
TOP_LEVEL_KEYS = (ROOT_KEY, OLD_ROOT_KEY, "trinity", *IGNORED_TOP_LEVEL)
DERIVE_NAME = "read_yaml_name"
BACKUP_NAME = "yaml_backup.yaml"


@dataclass
class LoadedConfig:
    """A config loaded for a run: the config, the root key the file used, and notes for the user."""

    config: Config
    root_name: str
    source: str
    notes: list[str]


def load_config(path: str | Path, overrides: Sequence[str] = (), backbone: str | None = None) -> Config:
    """Read, merge over the defaults, override, validate and check one config file.

    ``overrides`` are ``key.path=value`` strings (value read as YAML) that win over the file; a
    path starts with ``astuner.``, ``astune.`` or ``trinity.`` (or directly with an ``astuner``
    key such as ``rollout.``). ``backbone`` (from the command line) wins over both. Relative input
    paths that exist are made absolute (``astuner.config.paths``); one that exists nowhere is left
    as written, not an error here (``load_config_for_run`` reports it). Every problem raises
    ConfigError; ``module->Class`` strings are not resolved here.
    """
    return _load(path, overrides, backbone)[0]


def load_config_for_run(path: str | Path, overrides: Sequence[str] = (), backbone: str | None = None) -> LoadedConfig:
    """``load_config``, plus: an input path the run needs that exists nowhere is a ConfigError naming
    the key and every path tried; a path found only relative to the working directory, and a
    compatibility key set to a value it does not act on (``astuner.config.compat``), each give a note."""
    cfg, root_name, report = _load(path, overrides, backbone)
    source = str(path)
    if report.missing:
        first = report.missing[0]
        raise ConfigError(source, format_path([root_name, *first.key]), first.message())
    found = compat.checked_only_notes(cfg.astuner, AstunerConfig()) + report.notes
    notes = [f"{source}: {format_path([root_name, *key])}: {note}" for key, note in found]
    return LoadedConfig(cfg, root_name, source, notes)


def _load(path: str | Path, overrides: Sequence[str], backbone: str | None) -> tuple[Config, str, PathReport]:
    source = str(path)
    raw = read_yaml(Path(path), source)
    root_name, body, trinity = _split_top_level(raw, source)
    data: dict[str, Any] = {ROOT_KEY: _canonicalize(AstunerConfig, body, root_name, source), "trinity": trinity}
    applied: dict[tuple[str, ...], str] = {}
    for text in overrides:
        key_path = _apply_override(data, text, source)
        applied[key_path] = text
    if backbone is not None:
        data[ROOT_KEY]["backbone"] = backbone
    unsupported = drop_unsupported(data[ROOT_KEY])
    if unsupported is not None:
        message = unsupported.message()
        origin = override_for((ROOT_KEY, *unsupported.path), applied)
        if origin:
            message += f" (from override '{origin}')"
        raise UnsupportedKeyError(source, format_path([root_name, *unsupported.path]), message)
    try:
        cfg = Config.model_validate(data)
    except ValidationError as exc:
        raise from_validation_error(exc, source, Config, root_name, applied) from None
    check_invariants(cfg, source, root_name)
    bases = PathBases(config_dir=Path(os.path.abspath(Path(path).parent)), cwd=Path.cwd())
    overridden = [key[1:] for key in applied if key[0] == ROOT_KEY]
    report = resolve_paths(cfg.astuner, bases, overridden)
    return cfg, root_name, report


def check_invariants(cfg: Config, source: str = "config", root_name: str = ROOT_KEY) -> None:
    """Cross-key rules a single field cannot express (upstream asserted them deep inside rollouts)."""
    data, rollout = cfg.astuner.data, cfg.astuner.rollout
    needed = data.max_prompt_length + data.max_response_length
    if needed > rollout.max_model_len:
        raise ConfigError(
            source,
            f"{root_name}.rollout.max_model_len",
            f"must be >= data.max_prompt_length + data.max_response_length = "
            f"{data.max_prompt_length} + {data.max_response_length} = {needed}, got {rollout.max_model_len}",
        )


def config_to_dict(cfg: Config) -> dict[str, Any]:
    """The whole config as plain YAML-safe data, root key ``astuner:`` plus ``trinity:``."""
    return cfg.model_dump(mode="json")


def experiment_name(cfg: Config, conf_path: str | Path, now: datetime | None = None) -> str:
    """The run's name: ``experiment_name``, or ``<yaml name>_<YYYYmmdd_HHMM>`` when unset or ``read_yaml_name``."""
    name = cfg.astuner.experiment_name
    if not name or name == DERIVE_NAME:
        stem = Path(conf_path).name
        for suffix in (".yaml", ".yml"):
            stem = stem.removesuffix(suffix)
        name = f"{stem}_{(now or datetime.now()):%Y%m%d_%H%M}"
    return name.replace("|", "-")


def prepare_experiment(cfg: Config, conf_path: str | Path, exp_dir: str | Path, name: str | None = None) -> Path:
    """Name the run, create ``<exp_dir>/<name>/`` and write the resolved config to ``yaml_backup.yaml``.

    ``name`` is the run's name when the caller chose it (the CLI does, to resume an unfinished run
    under its own name); else ``experiment_name(cfg, conf_path)``. Sets ``experiment_name`` and the
    absolute ``experiment_dir`` on ``cfg``. An existing directory is reused (resuming) and its backup
    replaced by this run's config. The backup loads back with ``load_config`` to an equal config.
    """
    name = name or experiment_name(cfg, conf_path)
    directory = Path(os.path.abspath(Path(exp_dir).expanduser() / name))
    directory.mkdir(parents=True, exist_ok=True)
    cfg.astuner.experiment_name = name
    cfg.astuner.experiment_dir = str(directory)
    header = f"# The fully resolved config of this run (from {conf_path}); reload it with --conf.\n"
    (directory / BACKUP_NAME).write_text(header + dump_yaml(config_to_dict(cfg)), encoding="utf-8")
    return directory


def _split_top_level(raw: Any, source: str) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """Check the top level; return (root key the user wrote, its mapping, the trinity mapping)."""
    if raw is None:
        raise ConfigError(source, None, "the file is empty; expected a mapping with an 'astuner:' root key")
    if not isinstance(raw, dict):
        raise ConfigError(source, None, f"expected a mapping with an 'astuner:' root key, got {show_value(raw)}")
    for key in raw:
        if key not in TOP_LEVEL_KEYS:
            message = unknown_key_message(str(key), (ROOT_KEY, "trinity"))
            allowed = "allowed: astuner (or astune), trinity, hydra, defaults"
            raise ConfigError(source, str(key), f"{message} at the top level; {allowed}")
    roots = [k for k in (ROOT_KEY, OLD_ROOT_KEY) if k in raw]
    if len(roots) == 2:
        raise ConfigError(source, None, "both 'astuner:' and its old name 'astune:' are root keys; keep one")
    if not roots:
        raise ConfigError(source, None, "missing the 'astuner:' root key (the seed-era 'astune:' also works)")
    root_name = roots[0]
    return root_name, _mapping(raw[root_name], root_name, source), _mapping(raw.get("trinity"), "trinity", source)


def _mapping(value: Any, key: str, source: str) -> dict[str, Any]:
    """A block's value as a dict; an empty block (YAML null) means "all defaults"."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(source, key, f"expected a mapping, got {show_value(value)}")
    return value


def _canonicalize(block: type[BaseModel], data: dict[str, Any], path: str, source: str) -> dict[str, Any]:
    """Move old key names onto current ones throughout, so overrides of either name win over the file."""
    try:
        out = dict(apply_renames(block, data))
    except RenameConflict as exc:
        raise ConfigError(source, f"{path}.{exc.new}", str(exc)) from None
    for key, value in out.items():
        child = child_block(block, key) if isinstance(key, str) else None
        if child is None:
            continue
        if value is None:
            out[key] = {}
        elif isinstance(value, dict):
            out[key] = _canonicalize(child, value, f"{path}.{key}", source)
    return out


def _apply_override(data: dict[str, Any], text: str, source: str) -> tuple[str, ...]:
    """Set one ``key.path=value`` in ``data``; return the canonical key path it set."""
    key, sep, raw_value = text.partition("=")
    key = key.strip()
    parts = key.split(".")
    where = f"override '{text}'"
    if not sep or not all(parts):
        raise ConfigError(source, None, f"{where}: expected key.path=value")
    if parts[0] in (ROOT_KEY, OLD_ROOT_KEY):
        parts = [ROOT_KEY, *parts[1:]]
    elif parts[0] != "trinity":
        if parts[0] not in AstunerConfig.model_fields and not is_unsupported(parts[0]):
            message = unknown_key_message(parts[0], [*AstunerConfig.model_fields, ROOT_KEY, "trinity"])
            raise ConfigError(source, key, f"{message} in {where}; paths start with astuner., astune. or trinity.")
        parts = [ROOT_KEY, *parts]
    if len(parts) < 2:
        raise ConfigError(source, key, f"{where}: cannot replace a whole root block; name a key inside it")
    if parts[0] == ROOT_KEY:
        parts = _canonical_parts(parts)
    node = data
    for depth, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            shown = format_path(parts[: depth + 1])
            message = f"is {show_value(child)}, not a mapping, so {where} cannot set a key inside it"
            raise ConfigError(source, shown, message)
        node = child
    node[parts[-1]] = parse_scalar(raw_value)
    return tuple(parts)


def _canonical_parts(parts: list[str]) -> list[str]:
    """Translate old key names along an ``astuner`` path (as ``_canonicalize`` does for the file)."""
    out = [parts[0]]
    block: type[BaseModel] | None = AstunerConfig
    for part in parts[1:]:
        if block is not None:
            part = getattr(block, "renamed_keys", {}).get(part, part)
            block = child_block(block, part)
        out.append(part)
    return out
