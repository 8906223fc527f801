"""Seed-era ``astune.protocol``: see ``astune.protocol.agentscope_protocol``."""
