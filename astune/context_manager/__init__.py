"""Seed-era ``astune.context_manager``: see ``astune.context_manager.agentscope_cm.cmt_agentscope``."""
