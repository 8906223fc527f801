"""Seed-era ``astune.schema``: see ``astune.schema.task``."""
