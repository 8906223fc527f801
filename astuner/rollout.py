"""One rollout and one group: run the workflow, judge it, flag bad cases, score, build samples.

Every backbone rolls out through ``Rollouts``. A rollout that raises (a bug in workflow or judge
code, an unreachable LLM judge) is retried ``rollout.max_rollout_retries`` times, then returned
with ``error`` set and no samples: the caller counts it (as a failure in the success rate,
``summarize``) and drops it from the update, never silently. A malformed model output is never an
error here: the model tuner turns it into text the agent sees and a counted bad case. The reward the
samples carry is the judge's shaped by the rubric of ``astuner.task_judge.rubric`` (bad-case
penalties, the madness override), each term's part kept in ``RolloutResult.reward_terms``.
"""

from __future__ import annotations

import asyncio
import inspect
import traceback
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from astuner.auxiliary_models import build_auxiliary_models
from astuner.chat_template import ChatTemplate
from astuner.engine.base import Engine
from astuner.env_service.session import env_for_rollout
from astuner.model_tuner import ModelTuner, ModelTunerSettings
from astuner.samples import SampleStats, build_samples
from astuner.schema import Sample, Task, WorkflowOutput, WorkflowTask
from astuner.task_judge.bad_cases import BAD_CASES, detect_bad_cases
from astuner.task_judge.turn_problems import TURN_PROBLEMS, detect_turn_problems
from astuner.task_judge.madness import detect_madness
from astuner.task_judge.rubric import shaping_rubric
from astuner.tool.limits import ToolLimits, use_limits
from astuner.workflow import run_workflow

if TYPE_CHECKING:
    from astuner.config.schema import Config


@dataclass
class RolloutResult:
    """What one rollout produced; ``error`` is set (and ``samples`` empty) when it failed."""

    task_id: str
    repeat_index: int
    rollout_id: str
    reward: float = 0.0
    raw_reward: float = 0.0
    is_success: bool = False
    final_answer: Any = None
    bad_cases: dict[str, bool] = field(default_factory=dict)
    madness: dict[str, bool] = field(default_factory=dict)
    messages: list[dict] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    stats: SampleStats = field(default_factory=SampleStats)
    num_calls: int = 0
    num_tool_calls: int = 0
    timeline_breaks: int = 0
    context_overflow: bool = False
    attempts: int = 1
    error: str | None = None
    env: dict[str, Any] = field(default_factory=dict)
    """env_service rollouts: the instance's metrics (``astuner.env_service.session``); else empty."""
    metrics: dict[str, Any] = field(default_factory=dict)
    """The workflow's ``metadata["metrics"]`` (agentscope.tuner functions: workflow and judge metrics)."""
    reward_terms: dict[str, float] = field(default_factory=dict)
    """Each rubric term's contribution to ``reward`` (``astuner.task_judge.rubric``); empty when failed."""


class Rollouts:
    """Runs rollouts of one configured workflow + judge against one engine.

    ``config`` is the run's whole config: the runner reads its ``rollout``, ``data``,
    ``task_judge``, ``task_reader``, ``python_tool`` and ``seed`` settings, and a seed-style
    workflow is handed the whole of it (its ``agentscope_execute(..., config)``).
    """

    def __init__(
        self, config: Config, engine: Engine, template: ChatTemplate, workflow_cls: type, judge: Any,
        *, settings: ModelTunerSettings | None = None, seed_salt: int = 0,
    ) -> None:
        self.config = config
        self.engine = engine
        self.template = template
        self.workflow_cls = workflow_cls
        self.judge = judge
        self.seed_salt = seed_salt
        """Mixed into every rollout's sampling seed, so that steps differ (the local backbone: the step)."""
        a = config.astuner
        r = a.rollout
        self.settings = settings or ModelTunerSettings(
            temperature=r.temperature,
            top_p=r.top_p,
            max_model_len=r.max_model_len,
            max_response_length_in_one_turn=r.max_response_length_in_one_turn,
            seed=a.seed,
        )
        self.tool_limits = ToolLimits.from_config(a.python_tool)

    def variant(self, *, seed_salt: int, **sampling: Any) -> Rollouts:
        """A ``Rollouts`` like this one (same config, engine, workflow and judge) with another
        ``seed_salt`` and the given ``ModelTunerSettings`` fields replaced (``temperature``, ``top_p``,
        ...): a training step's or a validation's sampling, without changing this one."""
        return Rollouts(self.config, self.engine, self.template, self.workflow_cls, self.judge,
                        settings=replace(self.settings, **sampling), seed_salt=seed_salt)

    async def run_group(
        self, task: Task, num_repeat: int, semaphore: asyncio.Semaphore | None = None,
        on_result: Callable[[RolloutResult], None] | None = None, first_repeat: int = 0,
    ) -> list[RolloutResult]:
        """``num_repeat`` rollouts of one task, concurrently (bounded by ``semaphore``), in repeat order.

        ``on_result`` gets each rollout as it ends, after its ``semaphore`` slot is freed (the
        debug backbone's incremental log, through ``astuner.rollout_service``). Repeats are numbered
        from ``first_repeat`` (Trinity splits a group across runners by its ``run_id_base``)."""

        async def one(i: int) -> RolloutResult:
            if semaphore is None:
                result = await self.run(task, first_repeat + i)
            else:
                async with semaphore:
                    result = await self.run(task, first_repeat + i)
            if on_result is not None:
                on_result(result)
            return result

        return list(await asyncio.gather(*(one(i) for i in range(num_repeat))))

    async def run(self, task: Task, repeat_index: int) -> RolloutResult:
        retries = self.config.astuner.rollout.max_rollout_retries
        result = None
        for attempt in range(retries + 1):
            result = await self._attempt(task, repeat_index, attempt)
            result.attempts = attempt + 1
            if result.error is None:
                break
        return result

    async def _attempt(self, task: Task, repeat_index: int, attempt: int = 0) -> RolloutResult:
        wt = WorkflowTask(task=task, repeat_index=repeat_index)
        result = RolloutResult(task_id=task.task_id, repeat_index=repeat_index, rollout_id=wt.rollout_id)
        context = {
            "task_id": task.task_id,
            "query": task.main_query or (task.first_messages()[-1].get("content", "")),
            "rollout_id": wt.rollout_id,
        }
        seed = rollout_seed(self.settings.seed, self.seed_salt, wt.rollout_id, attempt)
        settings = replace(self.settings, seed=seed)
        tuner = ModelTuner(self.engine, self.template, settings, context=context)
        try:
            wt.auxiliary_models = build_auxiliary_models(self.config.astuner.rollout.auxiliary_models)
            reader = self.config.astuner.task_reader
            async with env_for_rollout(reader, wt, result.env):  # env_service: instance held, always released
                with use_limits(self.tool_limits):
                    output = await run_workflow(self.workflow_cls, wt, tuner, self.config)
                raw_reward, is_success = await self._judge(wt, output, tuner)
        except Exception as exc:  # counted and dropped by the caller; the traceback is kept for the log
            result.error = f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"
            _fill_from_tuner(result, tuner)
            return result
        _fill_from_tuner(result, tuner)
        a = self.config.astuner
        result.final_answer = output.metadata.get("final_answer")
        metrics = output.metadata.get("metrics")
        result.metrics = dict(metrics) if isinstance(metrics, Mapping) else {}
        result.bad_cases = {**detect_bad_cases(tuner.calls, result.messages), **detect_turn_problems(tuner.calls)}
        result.madness = detect_madness(tuner.calls, list(a.rollout.compute_madness_checklist))
        rubric = shaping_rubric(a.task_judge.bad_case_penalties.model_dump(), a.rollout.agent_madness_reward)
        score = rubric.score(raw_reward, result.bad_cases, result.madness)
        result.raw_reward, result.reward, result.is_success = float(raw_reward), score.reward, bool(is_success)
        result.reward_terms = score.terms
        result.samples, result.stats = build_samples(
            tuner.calls,
            reward=result.reward,
            group_id=task.task_id,
            rollout_id=wt.rollout_id,
            max_sample_per_task=a.rollout.multi_turn.max_sample_per_task,
            max_response_length=a.data.max_response_length,
            seed=a.seed,
        )
        return result

    async def _judge(self, wt: WorkflowTask, output: WorkflowOutput, tuner: ModelTuner) -> tuple[float, bool]:
        """A workflow's own reward, else the judge's verdict: an async ``compute_reward`` (agentscope.tuner
        judge functions) is awaited on this loop, a plain one runs in a thread so it cannot stall the loop."""
        if output.reward is not None:
            if isinstance(output.reward, list):
                raise TypeError("step rewards (a list) are not supported; return one float reward")
            return float(output.reward), bool(output.is_success)
        if inspect.iscoroutinefunction(self.judge.compute_reward):
            raw, ok = await self.judge.compute_reward(wt, output)
            return float(raw), bool(ok)
        return await asyncio.to_thread(self._judge_sync, wt, output, tuner)

    def _judge_sync(self, wt: WorkflowTask, output: WorkflowOutput, tuner: ModelTuner) -> tuple[float, bool]:
        judge_input = {
            "workflow_task": wt,
            "task_core_arg": wt,
            "env": wt.gym_env,
            "grouped_steps": tuner.grouped_steps,
            **output.metadata,
        }
        params = inspect.signature(self.judge.compute_reward).parameters.values()
        positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        if len(positional) == 2:
            raw, ok = self.judge.compute_reward(wt, output)
        else:
            raw, ok = self.judge.compute_reward(judge_input)
        return float(raw), bool(ok)


def rollout_seed(base: int | None, salt: int, rollout_id: str, attempt: int) -> int | None:
    """A distinct, reproducible sampling seed per rollout, so a group's rollouts differ."""
    if base is None:
        return None
    return zlib.crc32(f"{base}:{salt}:{rollout_id}:{attempt}".encode()) & 0x7FFFFFFF


def _fill_from_tuner(result: RolloutResult, tuner: ModelTuner) -> None:
    result.num_calls = len(tuner.calls)
    result.num_tool_calls = sum(
        1 for c in tuner.calls for tc in c.parsed_tool_calls if tc["name"] not in ("generate_response",)
    )
    result.timeline_breaks = tuner.timeline_breaks
    result.context_overflow = tuner.context_overflow
    result.messages = tuner.grouped_steps[-1] if tuner.calls else []


def summarize(results: list[RolloutResult]) -> dict[str, Any]:
    """Counts and rates of a list of rollouts; every denominator is stated (docs/metrics.md).

    ``success_rate`` is ``successes / rollouts``: a failed rollout (workflow or judge raised after
    its retries) counts as a failure, so a crash can never raise the rate. Everything else —
    ``reward_mean``, the per-rollout means, the bad-case and madness counts, the mean contribution
    of each reward term (``reward_term/<name>``), samples and tokens — is over the
    ``finished_rollouts`` (``rollouts - failed_rollouts``) only: a failed rollout has no reward and
    no samples to average. Empty denominators give 0.0.
    """
    ok = [r for r in results if r.error is None]
    n = len(ok)
    successes = sum(r.is_success for r in ok)
    summary: dict[str, Any] = {
        "rollouts": len(results),
        "failed_rollouts": len(results) - n,
        "finished_rollouts": n,
        "successes": successes,
        "success_rate": successes / len(results) if results else 0.0,
        "reward_mean": sum(r.reward for r in ok) / n if n else 0.0,
        "tool_calls_per_rollout": sum(r.num_tool_calls for r in ok) / n if n else 0.0,
        "llm_calls_per_rollout": sum(r.num_calls for r in ok) / n if n else 0.0,
        "samples": sum(len(r.samples) for r in ok),
        "timeline_breaks": sum(r.timeline_breaks for r in ok),
        "context_overflow": sum(r.context_overflow for r in ok),
        "truncated_samples": sum(r.stats.truncated_samples for r in ok),
        "generated_tokens": sum(r.stats.generated_tokens for r in ok),
    }
    for name in (*BAD_CASES, *TURN_PROBLEMS):
        summary[f"bad_case/{name}"] = sum(bool(r.bad_cases.get(name)) for r in ok)
    for name in sorted({k for r in ok for k in r.madness}):
        summary[f"madness/{name}"] = sum(bool(r.madness.get(name)) for r in ok)
    for name in dict.fromkeys(k for r in ok for k in r.reward_terms):
        summary[f"reward_term/{name}"] = sum(r.reward_terms.get(name, 0.0) for r in ok) / n
    if any(r.env for r in results):
        summary["env/errors"] = sum(bool(r.env.get("error") or r.env.get("release_error")) for r in results)
        summary["env/unreleased_instances"] = sum(bool(r.env.get("unreleased")) for r in results)
        summary["env/steps_per_rollout"] = sum(r.env.get("steps", 0) for r in ok) / n if n else 0.0
    return summary
