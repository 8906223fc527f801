"""The Math Agent written as agentscope.tuner functions (``math_agent.py``)."""
