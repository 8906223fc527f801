"""astuner's workflow as a Trinity-RFT 0.6.0 ``Workflow`` (registered as ``astuner_workflow``).

One Trinity task is one astuner task. Trinity's runner hands the workflow the task's repeat count
and the index of its first run (``can_repeat``; astuner's translation leaves
``explorer.max_repeat_times_per_runner`` unset, so one runner gets the whole group and its rollouts
run concurrently here, through ``astuner.rollout_service.roll_out`` with repeats numbered from that
index). For every run the workflow calls ``Rollouts.run(task, repeat_index)`` — the same code the
debug backbone runs: the user's AgentScope workflow with astuner's model tuner, the judge, bad-case
checks, token-exact samples — with the model tuner's engine bound to Trinity's rollout model
(``TrinityEngine``) and sampling from the task's ``rollout_args`` (training:
``rollout.temperature``/``top_p``; validation: ``val_kwargs``).

Every merged sample becomes one Experience (``experiences_from_rollout``):
``tokens = sample.token_ids``, ``prompt_length = sample.prompt_length``, ``logprobs`` and
``action_mask`` = the response part (from ``prompt_length`` on) of ``sample.logprobs`` and
``sample.loss_mask``, ``reward = sample.reward`` (the rollout's, after bad-case penalties and the
madness reward), ``eid.run`` = the run index, ``eid.step`` = the sample's index within its rollout,
``truncate_status = "response_truncated"`` for a sample cut at ``data.max_response_length``. The
last sample of each rollout carries the rollout's metrics (``success``, ``reward``, ``raw_reward``,
``bad_case/*``, ``madness/*``, ``llm_calls``, ``tool_calls``, ``samples``, ``timeline_breaks``,
``context_overflow``, ``failed_rollout_ratio``), so Trinity averages them per rollout, not per
sample. ``eid.task`` is left for the runner (the Trinity task id), which is the GRPO group key.

Failures: a rollout whose workflow or judge raised (after ``rollout.max_rollout_retries``) yields
no experience and is counted in ``failed_rollout_ratio``; if every rollout of the run set failed
the workflow raises, so Trinity counts the task as failed and retries it
(``explorer.max_retry_times``).
"""

from __future__ import annotations

import threading
from typing import Any

from trinity.common.experience import EID, Experience
from trinity.common.workflows.workflow import Workflow

from astuner.backbone.trinity.engine import TrinityEngine
from astuner.backbone.trinity.worker import runtime
from astuner.rollout import RolloutResult
from astuner.rollout_service import roll_out
from astuner.schema import Task

_engines: dict[int, tuple[Any, TrinityEngine]] = {}
_engines_lock = threading.Lock()


def engine_for(model: Any) -> TrinityEngine:
    """One ``TrinityEngine`` per Trinity model wrapper (a runner keeps its wrapper for its lifetime)."""
    with _engines_lock:
        found = _engines.get(id(model))
        if found is None or found[0] is not model:
            found = _engines[id(model)] = (model, TrinityEngine(model))
    return found[1]


def rollout_metrics(result: RolloutResult, failed_ratio: float) -> dict[str, float]:
    metrics = {
        "success": float(result.is_success),
        "reward": float(result.reward),
        "raw_reward": float(result.raw_reward),
        "llm_calls": float(result.num_calls),
        "tool_calls": float(result.num_tool_calls),
        "samples": float(len(result.samples)),
        "timeline_breaks": float(result.timeline_breaks),
        "context_overflow": float(result.context_overflow),
        "failed_rollout_ratio": float(failed_ratio),
    }
    metrics.update({f"bad_case/{k}": float(bool(v)) for k, v in result.bad_cases.items()})
    metrics.update({f"madness/{k}": float(bool(v)) for k, v in result.madness.items()})
    metrics.update({f"reward_term/{k}": float(v) for k, v in result.reward_terms.items()})
    return metrics


def experiences_from_rollout(result: RolloutResult, run: int, failed_ratio: float = 0.0) -> list[Experience]:
    """One Trinity Experience per merged sample of a finished rollout (see the module docstring)."""
    out = []
    last = len(result.samples) - 1
    for step, sample in enumerate(result.samples):
        p = sample.prompt_length
        if not 0 < p < len(sample.token_ids):
            raise ValueError(f"{result.rollout_id}: sample {step} has prompt_length {p} of {len(sample.token_ids)} tokens")
        out.append(
            Experience(
                eid=EID(run=run, step=step),
                tokens=list(sample.token_ids),
                prompt_length=p,
                logprobs=[float(x) for x in sample.logprobs[p:]],
                action_mask=[bool(m) for m in sample.loss_mask[p:]],
                reward=float(sample.reward),
                truncate_status="response_truncated" if sample.truncated else None,
                info={"astuner_task_id": result.task_id, "astuner_rollout_id": result.rollout_id},
                metrics=rollout_metrics(result, failed_ratio) if step == last else {},
            )
        )
    return out


class AstunerWorkflow(Workflow):
    """Runs ``repeat_times`` astuner rollouts of one task and returns their samples as Experiences."""

    is_async = True
    can_repeat = True
    can_reset = False

    def __init__(self, *, task: Any, model: Any, auxiliary_models: Any = None) -> None:
        super().__init__(task=task, model=model, auxiliary_models=auxiliary_models)
        self.repeat_times = int(task.repeat_times or task.rollout_args.n or 1)
        self.run_id_base = 0

    def set_repeat_times(self, repeat_times: int, run_id_base: int) -> None:
        self.repeat_times = int(repeat_times)
        self.run_id_base = int(run_id_base)

    async def run_async(self) -> list[Experience]:
        args = self.task.workflow_args or {}
        rt = runtime(args.get("astuner_config"), args.get("astuner_launch_dir"))
        rollouts = rt.rollouts(engine_for(self.model), self.task.rollout_args, salt=self.task.batch_id)
        task = Task.model_validate(self.task.raw_task or {})
        results = await roll_out(rollouts, [task], self.repeat_times, self.repeat_times, first_repeat=self.run_id_base)
        failed = [r for r in results if r.error is not None]
        ratio = len(failed) / len(results) if results else 0.0
        for r in failed:
            self.logger.warning(f"astuner rollout {r.rollout_id} failed after {r.attempts} attempt(s):\n{r.error}")
        exps: list[Experience] = []
        for result in results:
            if result.error is None:
                exps.extend(experiences_from_rollout(result, result.repeat_index, ratio))
        if not exps:
            first = failed[0].error.strip().splitlines()[-1] if failed and failed[0].error else "no samples"
            raise RuntimeError(f"all {len(results)} astuner rollout(s) of task {task.task_id!r} produced no sample: {first}")
        return exps
