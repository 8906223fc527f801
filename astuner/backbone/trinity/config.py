"""astuner config → Trinity-RFT 0.6.0 config (plain data; importing this module needs no Trinity).

``translate(config, exp_dir)`` builds the Trinity YAML in three steps:

1. **Computed values** from astuner keys — upstream's mapping table, plus the keys astuner adds:

   ==============================================  =============================================
   astuner key                                     Trinity key
   ==============================================  =============================================
   trainer_common.nnodes / n_gpus_per_node         cluster.node_num / cluster.gpu_per_node, and
                                                   mode (colocate for 1 GPU, else both)
   trainer_common.total_epochs                     buffer.total_epochs
   trainer_common.test_freq                        explorer.eval_interval
   trainer_common.val_before_train                 explorer.eval_on_startup
   trainer_common.save_freq                        trainer.save_interval
   trainer_common.ulysses_sequence_parallel_size   trainer.ulysses_sequence_parallel_size
   trainer_common.optim.lr                         algorithm.optimizer.lr
   trainer_common.logger                           monitor.monitor_type (the first tracker of a list;
                                                   'none' → 'tensorboard')
   trainer_common.checkpoint_base_dir              checkpoint_root_dir (made absolute)
   trainer_common.use_kl_loss / kl_loss_type /     algorithm.kl_loss_fn ('none' when off) /
   kl_loss_coef                                    algorithm.kl_loss_fn_args.kl_coef
   rollout.n_vllm_engine (0: astuner's rule)       explorer.rollout_model.engine_num
   rollout.tensor_model_parallel_size              explorer.rollout_model.tensor_parallel_size
   rollout.num_repeat                              algorithm.repeat_times
   rollout.max_model_len                           model.max_model_len; trainer.max_token_len_per_gpu
                                                   is max(max_model_len, TRAINER_TOKENS_PER_GPU)
   rollout.temperature / top_p                     model.temperature / top_p and the train
                                                   taskset's rollout_args (the trainer recomputes
                                                   logprobs at this temperature)
   rollout.max_response_length_in_one_turn         taskset rollout_args.max_tokens
   rollout.val_kwargs (temperature, top_p, top_k,  the validation taskset's rollout_args and
   num_repeat)                                     repeat_times
   model.path                                      model.model_path
   project_name / experiment_name                  project / name
   data.max_response_length                        model.max_response_tokens
   data.train_batch_size                           buffer.batch_size
   train_batch_size * num_repeat * expected_steps  buffer.train_batch_size (samples per step)
   runners (below) // engine_num                   explorer.runner_per_model
   seed                                            explorer.rollout_model.seed
   ==============================================  =============================================

   The GPU layout (``mode``, engine count, and in colocate mode ``gpu_memory_utilization`` 0.25,
   ``cuda_visible_devices: "0"`` and ``synchronizer.sync_method: memory``; the launch adds
   ``ASTUNER_TRINITY_COLOCATE=1`` to every actor's environment, so that astuner's plugin starts the
   engine without a GPU placement group: ``colocate.py``) comes from ``layout.plan_layout``, which reads the
   ``trinity:`` block too, so that a user's ``engine_num`` or ``tensor_parallel_size`` shapes it.

   Fixed choices: ``algorithm_type: multi_step_grpo`` (step-wise GRPO takes
   one reward per *rollout* and gives its advantage to every sample of that rollout, so it equals
   plain ``grpo`` when each rollout is one sample and stays correct when a rollout is split into
   several samples — plain ``grpo`` would count such a rollout several times); the train taskset
   ``astuner`` reads astuner's training split, the validation taskset its validation split
   (``eval_tasksets``, so Trinity evaluates every ``test_freq`` steps); both run the workflow
   ``astuner_workflow``; the rollout model serves the OpenAI API (astuner's engine calls
   ``/v1/completions`` with token ids) and does not record history;
   ``model.enable_prompt_truncation: false`` (astuner never lets Trinity cut a prompt);
   each runner runs a whole group: ``max_repeat_times_per_runner`` is left unset, and the workflow
   runs the group's rollouts concurrently (``AstunerWorkflow.run_async``), so the explorer needs
   ``ceil(max_env_worker / repeat_times)`` runners for ``max_env_worker`` rollouts in flight, at most
   ``MAX_RUNNERS`` (16). Why: every runner is a Ray actor that imports astuner, agentscope and torch
   before its first task, 8 at a time (Trinity's ``runner_prepare_concurrency``); on an H100
   machine (16 CPUs) 128 runners of one rollout each took 4.5 minutes to start before the first
   rollout (docs/results/trinity_gpu.md, 2026-12-06).
   **Trainer attention**: Trinity's trainer (verl) loads the policy with ``flash_attention_2`` and
   unpads batches with ``flash_attn``'s helpers. Where the ``flash_attn`` package is not importable
   on the launching machine (it has no wheels on PyPI; the GPU image has none), astuner sets
   ``trainer.use_remove_padding: false`` and ``trainer.trainer_config.model.override_config.
   attn_implementation: sdpa`` and says so in a note; with ``flash_attn`` installed, Trinity's
   defaults stand. Not guaranteed: that Ray workers on other nodes have the same packages.
2. **The user's ``trinity:`` block wins**: it is merged over the computed values key by key
   (mappings merge, lists and scalars replace). Upstream applied its mapping *after* the user's
   block, silently overriding it; astuner does the opposite, so ``trinity.algorithm.repeat_times:
   6`` means 6. The two computed keys then follow the final values they depend on:
   ``buffer.train_batch_size = buffer.batch_size * algorithm.repeat_times * expected_steps`` and
   ``explorer.runner_per_model = min(ceil(max_env_worker / algorithm.repeat_times), 16) //
   explorer.rollout_model.engine_num``
   (unless the ``trinity:`` block sets them itself).
3. **The batch guard** (upstream's): with ``fsdp`` trainer GPUs (``gpu_per_node * node_num -
   engine_num * tensor_parallel_size``; 1 in colocate mode), ``buffer.train_batch_size`` must be a
   multiple of ``fsdp``. A computed value is raised to the next multiple (with a note); a value the
   user set in ``trinity:`` is never changed — a bad one is an error.

Not mapped (Trinity has no equivalent or keeps its own default): ``data.max_prompt_length``
(Trinity derives it), ``trainer_common.mini_batch_num``, ``rollout.max_num_seqs`` (a compatibility
key nothing reads); ``fsdp_config`` and ``trainer_common.algorithm`` are refused by the loader
unless left at upstream's defaults (``astuner/config/unsupported.py``). Trinity's own ``check_and_update`` (``check_with_trinity``) validates
the result; it needs ``cluster.node_num``/``gpu_per_node`` (set here) so that it does not ask Ray,
and it creates ``checkpoint_job_dir`` on disk.
"""

from __future__ import annotations

import copy
import importlib.util
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from astuner.backbone.runtime import model_path as resolve_model_path
from astuner.backbone.trinity.layout import (
    COLOCATE_GPU_MEMORY_UTILIZATION,
    Layout,
    LayoutError,
    dotted_get,
    plan_layout,
)
from astuner.config.schema import Config
from astuner.tracking.names import trinity_monitor

if TYPE_CHECKING:
    from trinity.common.config import Config as TrinityConfig

WORKFLOW_NAME = "astuner_workflow"
READER_NAME = "astuner"
CONFIG_ENV = "ASTUNER_CONFIG_REDIRECT"
"""Path of the run's ``yaml_backup.yaml``, for the plugin code inside Ray workers."""
LAUNCH_DIR_ENV = "ASTUNER_LAUNCH_DIR"
"""The directory astuner was launched from; workers resolve the config's relative paths against it."""
PLUGIN_DIR = Path(__file__).resolve().parent / "plugins"
TRINITY_CONFIG_NAME = "trinity_config.yaml"
BACKUP_NAME = "yaml_backup.yaml"
SDPA = "sdpa"
"""The trainer's attention implementation when ``flash_attn`` is not installed (PyTorch's own kernels)."""


class TranslationError(ValueError):
    """The astuner + trinity settings cannot make a valid Trinity config (one line for the user)."""


@dataclass
class Translation:
    """The Trinity config as plain data, the GPU layout it uses, and notes for the user (values astuner adjusted)."""

    data: dict[str, Any]
    layout: Layout
    notes: list[str] = field(default_factory=list)


MAX_RUNNERS = 16
# Tokens one trainer micro-batch packs (verl's dynamic batch size). It must hold one whole sequence
# (max_model_len); below that, more tokens per micro-batch means fewer kernel launches per update. At
# max_model_len (1024) an H100 spent 33 s per step on ~105 micro-batches of a 0.2 M-parameter model
# (docs/results/trinity_gpu.md); 16384 is verl's own example value. Activation memory grows with it:
# lower it through ``trinity: {trainer: {max_token_len_per_gpu: ...}}`` for a large model on a small card.
TRAINER_TOKENS_PER_GPU = 16384
"""Most workflow runners (Ray actors) astuner asks Trinity for; each runs one group at a time."""


def deep_merge(base: dict, override: dict) -> dict:
    """``base`` with ``override`` merged in: mappings merge key by key, anything else is replaced."""
    out = copy.deepcopy(base)
    for key, value in (override or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _abs(path: str) -> str:
    return os.path.abspath(os.path.expanduser(path))


def computed(config: Config, exp_dir: Path, layout: Layout, *, with_validation: bool = True,
             launch_dir: str | None = None) -> dict:
    """The Trinity config astuner derives from its own keys and ``layout`` (step 1 of the module docstring)."""
    a = config.astuner
    r, d, tc = a.rollout, a.data, a.trainer_common
    backup = str(Path(exp_dir).resolve() / BACKUP_NAME)
    launch_dir = launch_dir or os.getcwd()
    monitor = trinity_monitor(tc.logger)
    kl_fn = tc.kl_loss_type if tc.use_kl_loss else "none"
    env_vars = {CONFIG_ENV: backup, LAUNCH_DIR_ENV: launch_dir, "TRINITY_PLUGIN_DIRS": str(PLUGIN_DIR)}
    taskset = {
        "name": "astuner_train",
        "storage_type": READER_NAME,
        "path": backup,
        "split": "train",
        "default_workflow_type": WORKFLOW_NAME,
        "rollout_args": {"temperature": r.temperature, "top_p": r.top_p, "max_tokens": r.max_response_length_in_one_turn},
        "workflow_args": {"astuner_config": backup, "astuner_launch_dir": launch_dir},
    }
    data: dict[str, Any] = {
        "mode": layout.mode,
        "project": a.project_name,
        "name": a.experiment_name,
        "checkpoint_root_dir": _abs(tc.checkpoint_base_dir),
        "continue_from_checkpoint": True,
        "model": {
            "model_path": resolve_model_path(a.model.path),
            "max_model_len": r.max_model_len,
            "max_response_tokens": d.max_response_length,
            "temperature": r.temperature,
            "top_p": r.top_p,
            "enable_prompt_truncation": False,
        },
        "cluster": {"node_num": layout.node_num, "gpu_per_node": layout.gpu_per_node},
        "algorithm": {
            "algorithm_type": "multi_step_grpo",
            "repeat_times": r.num_repeat,
            "optimizer": {"lr": tc.optim.lr},
            "kl_loss_fn": kl_fn,
            "kl_loss_fn_args": {"kl_coef": tc.kl_loss_coef},
        },
        "buffer": {
            "batch_size": d.train_batch_size,
            "train_batch_size": d.train_batch_size * r.num_repeat * r.multi_turn.expected_steps,
            "total_epochs": tc.total_epochs,
            "explorer_input": {"taskset": taskset, "eval_tasksets": []},
            "trainer_input": {
                "experience_buffer": {"name": "astuner_experience_buffer", "storage_type": "queue", "max_read_timeout": 18000},
            },
        },
        "explorer": {
            "runner_per_model": runners_per_engine(r.max_env_worker, r.num_repeat, layout.engine_num),
            "max_timeout": 3600,
            "eval_interval": tc.test_freq,
            "eval_on_startup": tc.val_before_train,
            "env_vars": env_vars,
            "rollout_model": {
                "engine_num": layout.engine_num,
                "tensor_parallel_size": layout.tensor_parallel,
                "enable_openai_api": True,
                "enable_history": False,
                "dtype": "bfloat16",
                "seed": a.seed,
            },
        },
        "synchronizer": {"sync_method": "nccl", "sync_interval": 1, "sync_timeout": 7200},
        "trainer": {
            "save_interval": tc.save_freq,
            "grad_clip": 1.0,
            "use_dynamic_bsz": True,
            "max_token_len_per_gpu": max(r.max_model_len, TRAINER_TOKENS_PER_GPU),
            "ulysses_sequence_parallel_size": tc.ulysses_sequence_parallel_size,
        },
        "monitor": {"monitor_type": monitor},
    }
    if layout.mode == "colocate":
        data["explorer"]["rollout_model"]["gpu_memory_utilization"] = COLOCATE_GPU_MEMORY_UTILIZATION
        data["explorer"]["rollout_model"]["cuda_visible_devices"] = "0"
        data["synchronizer"]["sync_method"] = "memory"
    if importlib.util.find_spec("flash_attn") is None:
        data["trainer"]["use_remove_padding"] = False
        data["trainer"]["trainer_config"] = {"model": {"override_config": {"attn_implementation": SDPA}}}
    if with_validation:
        v = r.val_kwargs
        data["buffer"]["explorer_input"]["eval_tasksets"] = [
            {
                "name": "astuner_validation",
                "storage_type": READER_NAME,
                "path": backup,
                "split": "validation",
                "default_workflow_type": WORKFLOW_NAME,
                "repeat_times": v.num_repeat,
                "rollout_args": {"temperature": v.temperature, "top_p": v.top_p, "top_k": v.top_k,
                                 "max_tokens": r.max_response_length_in_one_turn},
                "workflow_args": {"astuner_config": backup, "astuner_launch_dir": launch_dir},
            }
        ]
    return data


def translate(config: Config, exp_dir: Path, *, with_validation: bool = True, launch_dir: str | None = None) -> Translation:
    """The GPU layout, computed values, the user's ``trinity:`` block over them, then the batch guard."""
    user = dict(config.trinity or {})
    try:
        layout = plan_layout(config)
    except LayoutError as exc:
        raise TranslationError(str(exc)) from None
    data = deep_merge(computed(config, exp_dir, layout, with_validation=with_validation, launch_dir=launch_dir), user)
    _recompute(config, data, user)
    notes: list[str] = []
    if dotted_get(data, "trainer.trainer_config.model.override_config.attn_implementation") == SDPA:
        notes.append("flash_attn is not installed: Trinity's trainer uses sdpa attention without remove-padding")
    _batch_guard(data, user, notes)
    return Translation(data, layout, notes)


def _recompute(config: Config, data: dict, user: dict) -> None:
    """Computed keys follow the ``trinity:`` values they depend on (unless the user set them too)."""
    r = config.astuner.rollout
    if dotted_get(user, "buffer.train_batch_size") is None:
        data["buffer"]["train_batch_size"] = (
            int(data["buffer"]["batch_size"]) * int(data["algorithm"]["repeat_times"]) * r.multi_turn.expected_steps
        )
    if dotted_get(user, "explorer.runner_per_model") is None:
        engines = int(data["explorer"]["rollout_model"].get("engine_num", 1) or 1)
        repeats = int(data["algorithm"]["repeat_times"])
        data["explorer"]["runner_per_model"] = runners_per_engine(r.max_env_worker, repeats, engines)


def runners_per_engine(max_env_worker: int, repeat_times: int, engines: int) -> int:
    """Workflow runners per rollout engine: enough whole groups for ``max_env_worker`` rollouts in flight,
    at most ``MAX_RUNNERS`` in all (each is a Ray actor with a slow start), at least one per engine."""
    groups = -(-max_env_worker // max(1, repeat_times))
    return max(1, min(groups, MAX_RUNNERS) // max(1, engines))


def trainer_gpus(data: dict) -> int:
    """GPUs the trainer trains on: all GPUs minus the rollout engines' (upstream's ``fsdp`` count); 1 in colocate mode."""
    if data.get("mode") == "colocate":
        return 1
    world = int(dotted_get(data, "cluster.gpu_per_node", 0) or 0) * int(dotted_get(data, "cluster.node_num", 0) or 0)
    rollout = dotted_get(data, "explorer.rollout_model", {}) or {}
    per_engine = (int(rollout.get("tensor_parallel_size", 1) or 1) * int(rollout.get("data_parallel_size", 1) or 1)
                  * int(rollout.get("pipeline_parallel_size", 1) or 1))
    return world - per_engine * int(rollout.get("engine_num", 1) or 1)


def _batch_guard(data: dict, user: dict, notes: list[str]) -> None:
    fsdp = trainer_gpus(data)
    size = int(dotted_get(data, "buffer.train_batch_size", 0) or 0)
    if fsdp <= 0 or size <= 0 or size % fsdp == 0:
        return
    if dotted_get(user, "buffer.train_batch_size") is not None:
        raise TranslationError(
            f"trinity.buffer.train_batch_size = {size} is not a multiple of the {fsdp} trainer GPUs "
            f"(cluster GPUs minus rollout engines); use a multiple of {fsdp}"
        )
    bumped = size + (fsdp - size % fsdp)
    data["buffer"]["train_batch_size"] = bumped
    notes.append(
        f"buffer.train_batch_size raised from {size} to {bumped}, the next multiple of the {fsdp} trainer GPUs"
    )


def write_trinity_config(data: dict, exp_dir: Path) -> Path:
    """Save the Trinity config as ``<exp_dir>/trinity_config.yaml`` (``trinity run --config`` accepts it too)."""
    from astuner.config.yaml_io import dump_yaml

    path = Path(exp_dir) / TRINITY_CONFIG_NAME
    header = "# Trinity-RFT 0.6.0 config generated by astuner from yaml_backup.yaml (the trinity: block won over computed values).\n"
    path.write_text(header + dump_yaml(data), encoding="utf-8")
    return path


def check_with_trinity(path: Path) -> TrinityConfig:
    """Trinity's own validation: ``load_config`` then ``check_and_update`` (in place); returns the checked config.

    Raises ``TranslationError`` with Trinity's message when either rejects it. ``check_and_update``
    creates ``checkpoint_job_dir`` (and its ``buffer``/``monitor``/``log`` folders) on disk.
    """
    from trinity.common.config import load_config

    try:
        cfg = load_config(str(path))
    except ValueError as exc:
        raise TranslationError(f"{path.name}: Trinity rejects the config: {_one_line(exc)}") from None
    try:
        cfg.check_and_update()
    except (ValueError, AssertionError, KeyError, ImportError) as exc:
        raise TranslationError(f"{path.name}: Trinity's check_and_update failed: {_one_line(exc)}") from None
    return cfg


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:400] or type(exc).__name__
