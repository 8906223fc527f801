"""Seed-era ``astune.workflow_controller``: see ``astune.workflow_controller.agentscope_flow``."""
