"""Seed-era ``astune.task_judge``: ``judge_base``, ``math_answer_as_judge``, ``env_service_as_judge``."""
