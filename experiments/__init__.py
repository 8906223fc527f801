"""Experiments built on astuner, kept out of the installed package (issue 18).

Each subpackage is run from the repository root, e.g. ``python -m experiments.tool_discipline``;
they import ``astuner`` like any user code and are not installed with it.
"""
