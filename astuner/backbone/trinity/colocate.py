"""Trinity-RFT 0.6.0's ``mode: colocate`` on one GPU, made to start (Trinity-RFT issue #602).

Why: in 0.6.0 the explorer creates its vLLM engine inside a Ray placement group that asks for one
whole GPU (``Allocator.create_all_models``, in ``Explorer.prepare``), but the trainer's verl worker
group has already reserved the cluster's only GPU in the trainer's constructor. The placement group
never becomes ready and the run hangs before its first step, silently (the trainer ready, no vLLM
memory on the card, no step: docs/results/trinity_gpu.md). Trinity's later sources create the
colocated engine without a placement group and with ``num_gpus=0``, pinned to GPU 0 through
``cuda_visible_devices``, so that both share the card.

``patch_allocator`` does the same from astuner's Trinity plugin, which Trinity imports in the
explorer's constructor, before ``prepare``. It applies only where the launch asked for it
(``ASTUNER_TRINITY_COLOCATE=1``, which the translation puts in ``explorer.env_vars`` for the
colocate layout) and only to trinity-rft 0.6.0 (a release with its own fix keeps its code). The
translation also sets ``explorer.rollout_model.cuda_visible_devices: "0"`` (0.6.0 pins GPU 0 itself
only when ``gpu_memory_utilization`` was above 0.25).

Scope: one vLLM engine of one GPU and no auxiliary models, which is all colocate mode allows;
anything else raises a one-line error instead of hanging. Run on one H100 with the tool-discipline
checkpoint (docs/results/trinity_gpu.md). Not guaranteed: that the engine and the trainer fit the
card together for a larger model (the engine takes 25% of its memory).
"""

from __future__ import annotations

import os
from copy import deepcopy
from typing import Any

COLOCATE_ENV = "ASTUNER_TRINITY_COLOCATE"
"""Set to ``1`` in the explorer's environment when the run uses Trinity's colocate mode."""
PATCHED_VERSION = "0.6.0"
"""The trinity-rft release whose allocator this module replaces."""


def patch_allocator() -> bool:
    """Replace ``Allocator.create_all_models`` for a colocated run on trinity-rft 0.6.0; True if in place."""
    if os.environ.get(COLOCATE_ENV) != "1":
        return False
    import trinity

    if getattr(trinity, "__version__", "") != PATCHED_VERSION:
        return False
    from trinity.common.models import allocator

    allocator.Allocator.create_all_models = create_colocated_models
    return True


async def create_colocated_models(self: Any) -> tuple[list[Any], list[list[Any]]]:
    """The rollout engine as a Ray actor that reserves no GPU (it shares GPU 0 with the trainer)."""
    import ray
    from trinity.common.models.model import ModelWrapper
    from trinity.common.models.vllm_model import vLLMRolloutModel

    rollout = self.config.rollout_model
    if (rollout.engine_num != 1 or rollout.tensor_parallel_size != 1 or self.config.auxiliary_models
            or not str(rollout.engine_type).startswith("vllm")):
        raise RuntimeError(
            "astuner's colocate start supports one vLLM engine of one GPU and no auxiliary models, got "
            f"engine_num={rollout.engine_num}, tensor_parallel_size={rollout.tensor_parallel_size}, "
            f"{len(self.config.auxiliary_models)} auxiliary model(s), engine_type={rollout.engine_type!r}"
        )
    config = deepcopy(rollout)
    config.engine_id = 0
    config.node_rank = 0
    config.ray_actor_name = self.get_actor_name("rollout", 0, 0)
    config.cuda_visible_devices = config.cuda_visible_devices or "0"
    self.logger.info(f"Creating inference_model {config.ray_actor_name} on the shared GPU "
                     f"{config.cuda_visible_devices} (astuner's colocate start, no placement group)")
    handle = (
        ray.remote(vLLMRolloutModel)
        .options(name=config.ray_actor_name, num_gpus=0, num_cpus=0, namespace=config.ray_namespace)
        .remote(config=config)
    )
    await handle.prepare.remote()
    address = await handle.get_api_server_url.remote()
    wrapper = ModelWrapper(models=[handle], config=config, api_address=address)
    await wrapper.prepare()
    return [wrapper], []
