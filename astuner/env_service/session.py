"""One rollout's env instance: created before the workflow, always released after the judge.

``env_for_rollout(reader, workflow_task, metrics)`` is the one thing the rollout runner calls, with
the run's ``astuner.task_reader`` block. When its ``type`` is ``env_service`` it

1. creates an instance named ``workflow_task.task_env_uuid`` (new for every attempt) of the task;
2. gives the workflow a copy of the task whose ``init_messages`` are the instance's first
   observation, and ``workflow_task.gym_env`` (an :class:`EnvServiceGymEnv`);
3. after the body (workflow and judge), releases the instance — also when the body raised or
   was cancelled, and when creating it failed in a way that may have reached the service;
4. fills ``metrics``: instance id, steps, ``released``, ``unreleased`` (an instance that may
   exist on the service was not released), the error, and HTTP request/retry/failure counts.

Errors: a failure to create, a broken handle (see ``gym_env.py``) and a failure to release all
fail the rollout with :class:`EnvServiceError`. When the body already failed, that error wins
and a release failure is only recorded in ``metrics["release_error"]``. For other reader types
this is a no-op and ``gym_env`` stays None.

Not guaranteed: an instance whose release request failed (the service is down) is not retried
later — it is left to the service, and counted (``released: false``) so the run shows it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from astuner.env_service.client import EnvClient, EnvServiceError, RetryPolicy
from astuner.env_service.gym_env import EnvServiceGymEnv

if TYPE_CHECKING:
    from astuner.config.schema_task import EnvServiceConfig, TaskReaderConfig
    from astuner.schema import WorkflowTask

logger = logging.getLogger(__name__)


def client_from_config(block: EnvServiceConfig) -> EnvClient:
    """An :class:`EnvClient` for the ``task_reader.env_service`` block (URL, timeout and retries)."""
    policy = RetryPolicy(timeout_s=block.timeout_s, max_retries=block.max_retries, backoff_s=block.retry_backoff_s)
    return EnvClient(block.env_url, policy)


@asynccontextmanager
async def env_for_rollout(
    reader: TaskReaderConfig, workflow_task: WorkflowTask, metrics: dict
) -> AsyncIterator[EnvServiceGymEnv | None]:
    """Hold the rollout's env instance around its body; see the module docstring."""
    if reader.type != "env_service":
        yield None
        return
    block = reader.env_service
    task = workflow_task.task
    env_type = task.env_type if task.env_type not in ("", "no_env") else block.env_type
    env = EnvServiceGymEnv(client_from_config(block), env_type, task.task_id, workflow_task.task_env_uuid)
    body_failed = False
    must_release = True
    try:
        try:
            messages = await asyncio.to_thread(env.create)
        except EnvServiceError as exc:
            must_release = exc.maybe_delivered  # a create the service never saw left nothing to release
            raise
        workflow_task.task = task.model_copy(update={"init_messages": messages})
        workflow_task.gym_env = env
        yield env
        if env.error is not None:
            raise env.error
    except BaseException:
        body_failed = True
        raise
    finally:
        release_error = await _release(env) if must_release else None
        metrics.update(env.metrics(), unreleased=must_release and not env.released)
        if release_error is not None:
            metrics["release_error"] = str(release_error)
            if not body_failed:
                raise release_error


async def _release(env: EnvServiceGymEnv) -> EnvServiceError | None:
    """Release, shielded from cancellation so a cancelled rollout still frees its instance."""
    try:
        await asyncio.shield(asyncio.to_thread(env.release))
    except EnvServiceError as exc:
        logger.warning("could not release env instance: %s", exc)
        return exc
    return None
