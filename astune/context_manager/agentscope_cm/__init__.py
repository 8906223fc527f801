"""Seed-era ``astune.context_manager.agentscope_cm``: see its ``cmt_agentscope`` module."""
