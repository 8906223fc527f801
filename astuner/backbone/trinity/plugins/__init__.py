"""The directory astuner puts in ``TRINITY_PLUGIN_DIRS`` (Trinity skips files starting with ``__``)."""
