"""astuner's config: a typed schema with a doc per key, YAML loading with one-line errors, overrides.

``load_config`` reads a user file (``astuner:`` or seed-era ``astune:`` root) over the schema's
defaults; ``prepare_experiment`` names the run and writes ``yaml_backup.yaml``. The key reference
is ``docs/config.md``.
"""

from astuner.config.errors import ConfigError
from astuner.config.loader import config_to_dict, load_config, prepare_experiment
from astuner.config.schema import Config

__all__ = ["Config", "ConfigError", "config_to_dict", "load_config", "prepare_experiment"]
