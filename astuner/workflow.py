"""The two workflow styles users write, and how astuner calls them.

New style (later upstream)::

    class MyWorkflow(Workflow):
        async def execute(self, workflow_task, model_tuner) -> WorkflowOutput: ...

Seed style (the Math Agent tutorial)::

    class ExampleMathLearn(AgentScopeLearnProtocol):
        async def agentscope_execute(self, init_messages, astune_proxy, config):
            ...
            astune_proxy.update_judge_input_dictionary(final_answer=final_answer)
            return astune_proxy

In both, the model object is the same ``ModelTuner``: pass it to ``ReActAgent(model=...)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

from astuner.schema import WorkflowOutput, WorkflowTask

if TYPE_CHECKING:
    from astuner.config.schema import Config
    from astuner.model_tuner import ModelTuner


class Workflow(BaseModel):
    """Base of new-style workflows. Extra fields are allowed so subclasses can hold state."""

    model_config = ConfigDict(extra="allow", arbitrary_types_allowed=True)

    name: str = "default_workflow"
    trainable_targets: list[str] = []

    async def execute(self, workflow_task: WorkflowTask, model_tuner: ModelTuner) -> WorkflowOutput:
        raise NotImplementedError(f"{type(self).__name__} must implement async execute(workflow_task, model_tuner)")


class AgentScopeLearnProtocol(BaseModel):
    """Base of seed-style workflows; the boolean fields are informational, as upstream."""

    model_config = ConfigDict(extra="allow", arbitrary_types_allowed=True)

    trainer: str = "astuner"
    agentflow_name: str = "agent-flow"
    trainable_agent_targets: list[str] = []

    async def agentscope_execute(self, init_messages: list[dict], astune_proxy: ModelTuner, config: Config) -> Any:
        """Run one rollout. ``config`` is the run's whole config, as astuner passes it.

        The signature is upstream's and stays as it is, ``config`` included, because seed-era
        workflows implement exactly this method and must run unchanged.
        """
        raise NotImplementedError(
            f"{type(self).__name__} must implement async agentscope_execute(init_messages, astune_proxy, config)"
        )


async def run_workflow(
    workflow_cls: type, workflow_task: WorkflowTask, model_tuner: ModelTuner, config: Config
) -> WorkflowOutput:
    """Instantiate and run either style; the seed style's judge keys become the output metadata.

    ``config`` (the run's whole config) is only handed to a seed-style ``agentscope_execute``.
    """
    if hasattr(workflow_cls, "agentscope_execute") and not _overrides(workflow_cls, "execute"):
        workflow = _instantiate(workflow_cls, trainer="astuner")
        model_tuner.update_agentscope_input_dictionary(workflow_task=workflow_task)
        await workflow.agentscope_execute(workflow_task.init_messages, model_tuner, config)
        judge_keys = model_tuner.get_judge_input_dictionary()
        return WorkflowOutput(
            reward=judge_keys.get("raw_reward") if "is_success" in judge_keys else None,
            is_success=judge_keys.get("is_success"),
            metadata=dict(judge_keys),
        )
    if not hasattr(workflow_cls, "execute"):
        raise TypeError(
            f"{workflow_cls.__module__}.{workflow_cls.__name__} is not a workflow: define "
            "async execute(workflow_task, model_tuner) or async agentscope_execute(init_messages, astune_proxy, config)"
        )
    workflow = _instantiate(workflow_cls, name="astuner")
    output = await workflow.execute(workflow_task, model_tuner)
    if output is None:
        output = WorkflowOutput()
    if not isinstance(output, WorkflowOutput):
        raise TypeError(f"{workflow_cls.__name__}.execute returned {type(output).__name__}, expected WorkflowOutput")
    merged = {**model_tuner.get_judge_input_dictionary(), **output.metadata}
    return output.model_copy(update={"metadata": merged})


def _overrides(cls: type, name: str) -> bool:
    return any(name in vars(k) for k in cls.__mro__ if k not in (Workflow, object, BaseModel))


def _instantiate(cls: type, **fields: Any) -> Any:
    """Pydantic workflows get upstream's identity fields; plain classes are built without arguments."""
    if isinstance(cls, type) and issubclass(cls, BaseModel):
        return cls(**fields)
    return cls()
