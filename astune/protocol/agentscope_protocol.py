"""Seed-era ``astune.protocol.agentscope_protocol``: astuner's ``AgentScopeLearnProtocol``."""

from astuner.workflow import AgentScopeLearnProtocol

__all__ = ["AgentScopeLearnProtocol"]
