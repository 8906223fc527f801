"""How a Trinity run splits the cluster's GPUs between the vLLM rollout engines and the trainer.

Trinity-RFT 0.6.0 has two ways to run explorer and trainer together (``trinity/common/
config_validator.py``, ``RayClusterConfigValidator._set_gpu_allocation_info``):

* ``mode: both`` — the explorer's engines get ``engine_num × tensor_parallel_size ×
  data_parallel_size × pipeline_parallel_size`` GPUs and the trainer every GPU left; there must be at
  least one left, and a trainer of more GPUs than one node has must use whole nodes. Weights go from
  trainer to engines over NCCL (``synchronizer.sync_method: nccl``).
* ``mode: colocate`` — exactly one GPU in the whole cluster, shared: one engine, one GPU per engine,
  no auxiliary models, ``trainer.ulysses_sequence_parallel_size`` 1. Trinity then caps the engine's
  ``gpu_memory_utilization`` at 0.25 (the trainer uses the rest of the card) and replaces NCCL sync
  with in-memory sync (``sync_method: memory``).

``plan_layout`` picks the layout from the astuner config (``trainer_common.nnodes ×
n_gpus_per_node`` GPUs, ``n_gpus_per_node: auto`` (the default) meaning the GPUs CUDA sees here, ``rollout.n_vllm_engine``, ``rollout.tensor_model_parallel_size``) and the
user's ``trinity:`` block, whose values always win (``mode``, ``cluster.*``,
``explorer.rollout_model.engine_num`` / ``tensor_parallel_size`` / ``data_parallel_size`` /
``pipeline_parallel_size`` / ``engine_type``, ``trainer.ulysses_sequence_parallel_size``):

* **mode**: the user's, else ``colocate`` for one GPU in total and ``both`` for two or more.
* **engines** (when neither ``rollout.n_vllm_engine`` nor ``trinity.explorer.rollout_model.
  engine_num`` is set; ``n_vllm_engine: 0`` means "not set"): one on a shared GPU in colocate mode;
  in both mode, half the GPUs (rounded down) go to the engines and the rest to the trainer — 2 GPUs:
  1 engine + 1 trainer GPU, 4: 2 + 2, 8: 4 + 4 — except that a trainer larger than one node is
  rounded up to whole nodes (3 nodes of 8: 8 engines + 16 trainer GPUs). With tensor parallelism T
  the engines' half holds ``half // T`` engines (at least one).

``check_layout`` then refuses, in one line naming the key to change, a layout Trinity would refuse or
that could not run: colocate on more than one GPU or with more than one engine GPU; engines that
leave the trainer no GPU; an engine spanning part of a node; a multi-node trainer that is not whole
nodes; trainer GPUs that the Ulysses sequence-parallel size does not divide.

Not guaranteed: that the model fits the memory of its share (colocate leaves the trainer about 75%
of one card; large models need ``trinity.trainer.param_offload`` / ``optimizer_offload``); layouts
of modes other than ``both`` and ``colocate`` (``explore``, ``train``, ...) are passed to Trinity
unchecked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from astuner.config.schema import Config

COLOCATE_GPU_MEMORY_UTILIZATION = 0.25
"""Trinity 0.6.0's cap for the engine's share of the card in colocate mode (it lowers larger values)."""
ENGINELESS_TYPES = ("external", "tinker")
"""Rollout engine types that take no GPU of the cluster."""

_ROLLOUT = "explorer.rollout_model"


class LayoutError(ValueError):
    """The GPU layout cannot work; the message names the key to change (one line)."""


@dataclass(frozen=True)
class Layout:
    """The chosen split of ``node_num × gpu_per_node`` GPUs between rollout engines and the trainer."""

    mode: str
    node_num: int
    gpu_per_node: int
    engine_num: int
    tensor_parallel: int
    gpus_per_engine: int
    """``tensor_parallel × data_parallel × pipeline_parallel`` (0 for an engine type that uses no GPU)."""
    engines_chosen: bool
    """True when astuner picked ``engine_num`` by its rule (nobody set it)."""

    @property
    def total_gpus(self) -> int:
        return self.node_num * self.gpu_per_node

    @property
    def explorer_gpus(self) -> int:
        return 1 if self.mode == "colocate" else self.engine_num * self.gpus_per_engine

    @property
    def trainer_gpus(self) -> int:
        """GPUs the trainer trains on: the shared one in colocate mode, else every GPU the engines leave."""
        return 1 if self.mode == "colocate" else self.total_gpus - self.explorer_gpus

    def describe(self) -> str:
        if self.mode == "colocate":
            return (f"colocate: 1 GPU shared by the vLLM engine (gpu_memory_utilization <= "
                    f"{COLOCATE_GPU_MEMORY_UTILIZATION}) and the trainer; weights synced in memory")
        engines = f"{self.engine_num} vLLM engine(s) x {self.gpus_per_engine} GPU(s)"
        how = " (astuner's default: half the GPUs)" if self.engines_chosen else ""
        return f"{self.mode}: {engines}{how} + {self.trainer_gpus} trainer GPU(s) of {self.total_gpus}"


def dotted_get(data: dict[str, Any], dotted: str, default: Any = None) -> Any:
    """The value a nested dict (a ``trinity:`` block, a Trinity config) holds at ``a.b.c``, or ``default``."""
    node: Any = data
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def _positive(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise LayoutError(f"{key}: must be a whole number >= 1, got {value!r}")
    return value


def visible_gpus() -> int:
    """``trainer_common.n_gpus_per_node: auto``: the CUDA devices this process sees (``CUDA_VISIBLE_DEVICES``
    respected); ``LayoutError`` when there are none, since a Trinity run needs at least one."""
    import torch

    count = int(torch.cuda.device_count())
    if count < 1:
        raise LayoutError("astuner.trainer_common.n_gpus_per_node: 'auto' found no CUDA GPU on this machine; "
                          "set it to the GPUs each node has")
    return count


def default_engine_num(total_gpus: int, gpu_per_node: int, gpus_per_engine: int) -> int:
    """astuner's engine count for ``both`` mode: half the GPUs for engines, a multi-node trainer in whole nodes."""
    trainer = total_gpus - total_gpus // 2
    if trainer > gpu_per_node and trainer % gpu_per_node:
        trainer = -(-trainer // gpu_per_node) * gpu_per_node
    return max(1, (total_gpus - trainer) // max(1, gpus_per_engine))


def plan_layout(config: Config) -> Layout:
    """The layout for ``config`` (rules in the module docstring); raises ``LayoutError`` for one that cannot work."""
    user = config.trinity or {}
    tc, r = config.astuner.trainer_common, config.astuner.rollout

    def pick(trinity_path: str, astuner_path: str, default: Any) -> int:
        value = dotted_get(user, trinity_path)
        return _positive(default if value is None else value, _key(user, trinity_path, astuner_path))

    node_num = pick("cluster.node_num", "trainer_common.nnodes", tc.nnodes)
    per_node = tc.n_gpus_per_node
    if per_node == "auto" and dotted_get(user, "cluster.gpu_per_node") is None:
        per_node = visible_gpus()
    gpu_per_node = pick("cluster.gpu_per_node", "trainer_common.n_gpus_per_node", per_node)
    tensor_parallel = pick(f"{_ROLLOUT}.tensor_parallel_size", "rollout.tensor_model_parallel_size",
                           r.tensor_model_parallel_size)
    per_engine = tensor_parallel
    for name in ("data_parallel_size", "pipeline_parallel_size"):
        per_engine *= pick(f"{_ROLLOUT}.{name}", f"{_ROLLOUT}.{name}", 1)
    if dotted_get(user, f"{_ROLLOUT}.engine_type") in ENGINELESS_TYPES:
        per_engine = 0
    total = node_num * gpu_per_node
    mode = str(dotted_get(user, "mode") or ("colocate" if total == 1 and per_engine else "both"))
    chosen = dotted_get(user, f"{_ROLLOUT}.engine_num") is None and r.n_vllm_engine == 0
    if not chosen:
        engines = pick(f"{_ROLLOUT}.engine_num", "rollout.n_vllm_engine", r.n_vllm_engine)
    elif mode == "colocate" or not per_engine:
        engines = 1
    else:
        engines = default_engine_num(total, gpu_per_node, per_engine)
    layout = Layout(mode, node_num, gpu_per_node, engines, tensor_parallel, per_engine, chosen)
    check_layout(layout, config)
    return layout


def _key(user: dict[str, Any], trinity_path: str, astuner_path: str) -> str:
    """The key that set a value: ``trinity.<path>`` when the ``trinity:`` block has it, else ``astuner.<path>``."""
    return f"trinity.{trinity_path}" if dotted_get(user, trinity_path) is not None else f"astuner.{astuner_path}"


def check_layout(layout: Layout, config: Config) -> None:
    """Raise ``LayoutError`` for a ``both``/``colocate`` layout that Trinity 0.6.0 refuses or that cannot train."""
    user = config.trinity or {}
    cluster = (f"{_key(user, 'cluster.node_num', 'trainer_common.nnodes')} x "
               f"{_key(user, 'cluster.gpu_per_node', 'trainer_common.n_gpus_per_node')}")
    engine_key = _key(user, f"{_ROLLOUT}.engine_num", "rollout.n_vllm_engine")
    tp_key = _key(user, f"{_ROLLOUT}.tensor_parallel_size", "rollout.tensor_model_parallel_size")
    sp_key = _key(user, "trainer.ulysses_sequence_parallel_size", "trainer_common.ulysses_sequence_parallel_size")
    sp = (dotted_get(user, "trainer.ulysses_sequence_parallel_size")
          or config.astuner.trainer_common.ulysses_sequence_parallel_size)
    total = layout.total_gpus
    if layout.mode == "colocate":
        if total != 1:
            raise LayoutError(f"trinity.mode: colocate needs exactly 1 GPU in the cluster (Trinity 0.6.0), but "
                              f"{cluster} = {total}; leave mode unset (astuner uses 'both' for 2 or more GPUs)")
        if layout.engine_num != 1:
            raise LayoutError(f"{engine_key}: colocate runs exactly 1 vLLM engine, got {layout.engine_num}")
        if layout.gpus_per_engine != 1:
            raise LayoutError(f"{tp_key}: colocate runs the engine on the one GPU (tensor, data and pipeline "
                              f"parallel 1), got {layout.gpus_per_engine} GPUs per engine")
        if sp > 1:
            raise LayoutError(f"{sp_key}: colocate needs 1 (Trinity 0.6.0), got {sp}")
        return
    if layout.mode != "both" or not layout.gpus_per_engine:
        return
    if total == 1:
        raise LayoutError(f"trinity.mode: both needs GPUs for the engines and for the trainer, and {cluster} = 1; "
                          "leave mode unset (astuner uses colocate, engine and trainer sharing the GPU)")
    if layout.explorer_gpus >= total:
        most = (total - 1) // layout.gpus_per_engine
        if most == 0:
            raise LayoutError(f"{tp_key}: one engine of {layout.gpus_per_engine} GPUs leaves none of the {total} GPUs "
                              f"({cluster}) for the trainer; give each engine fewer than {total} GPUs")
        raise LayoutError(f"{engine_key}: {layout.engine_num} vLLM engine(s) x {layout.gpus_per_engine} GPU(s) "
                          f"leave none of the {total} GPUs ({cluster}) for the trainer; use at most {most} engine(s)")
    per_node = layout.gpu_per_node
    if layout.gpus_per_engine > per_node and layout.gpus_per_engine % per_node:
        raise LayoutError(f"{tp_key}: an engine of {layout.gpus_per_engine} GPUs must fit in one node "
                          f"({per_node} GPUs) or span whole nodes")
    trainer = layout.trainer_gpus
    if trainer > per_node and trainer % per_node:
        raise LayoutError(f"{engine_key}: the trainer gets the {trainer} GPUs the engines leave, more than one "
                          f"node but not whole nodes of {per_node} (Trinity 0.6.0 needs whole nodes); change the "
                          "engine count")
    if trainer % sp:
        raise LayoutError(f"{sp_key}: the trainer's {trainer} GPUs are not divisible by the sequence-parallel "
                          f"size {sp}")
