"""Environments behind an HTTP service: the client, the env handle, the per-rollout session.

- ``client.py``: :class:`EnvClient` speaks the env_service protocol (create, step, evaluate,
  release, task list per split) with timeouts and bounded retries; failures are
  :class:`EnvServiceError` naming the URL and the operation.
- ``gym_env.py``: :class:`EnvServiceGymEnv`, the handle a workflow and judge get as
  ``workflow_task.gym_env`` (``step(action) -> (obs, reward, terminated, truncated, info)``,
  gymnasium's 5-tuple; ``legacy_step`` for gym's 4-tuple; ``evaluate``).
- ``step_api.py``: :class:`StepResult` and how ``terminated`` / ``truncated`` are read from new
  and older services (``is_truncated`` present or not) and converted between the 4- and 5-tuple.
- ``session.py``: :func:`env_for_rollout`, which the rollout runner wraps around workflow and
  judge so that every instance is released, also when the rollout fails.

The task reader is ``astuner.task_reader.env_service`` and the judge
``astuner.task_judge.env_service_as_judge``. A small real service (an arithmetic quiz) for tests
and the tutorial is outside the package: ``tutorial/example_env_agent/quiz_server.py`` (run
``python -m tutorial.example_env_agent.quiz_server`` from the repository root).
"""

from astuner.env_service.client import EnvClient, EnvServiceError, RetryPolicy
from astuner.env_service.gym_env import EnvServiceGymEnv
from astuner.env_service.session import client_from_config, env_for_rollout
from astuner.env_service.step_api import StepResult, to_five, to_four

__all__ = [
    "EnvClient", "EnvServiceError", "EnvServiceGymEnv", "RetryPolicy", "StepResult", "client_from_config",
    "env_for_rollout", "to_five", "to_four",
]
