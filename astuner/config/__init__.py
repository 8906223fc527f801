"""astuner's config: a typed schema with a doc per key, YAML loading with one-line errors, overrides.

``load_config`` reads a user file (``astuner:`` or seed-era ``astune:`` root) over the schema's
defaults, resolving relative input paths against the file's folder (``load_config_for_run`` also
requires the paths a run reads to exist); ``prepare_experiment`` names the run and writes
``yaml_backup.yaml``. The key reference is ``docs/config.md``.
"""

from astuner.config.errors import ConfigError
from astuner.config.loader import LoadedConfig, config_to_dict, load_config, load_config_for_run, prepare_experiment
from astuner.config.schema import Config

__all__ = [
    "Config",
    "ConfigError",
    "LoadedConfig",
    "config_to_dict",
    "load_config",
    "load_config_for_run",
    "prepare_experiment",
]
