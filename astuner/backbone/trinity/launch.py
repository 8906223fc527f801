"""The ``trinity`` backbone's launch: Trinity config, Ray, then Trinity's own ``run_stage``.

Before this runs, the CLI has done upstream's GPU check (every GPU at least 95% free,
``astuner.ray_service.check_gpus``; skipped with ``--skip-gpu-check``). Then, in order — each
step stops the launch with one clear line when it fails:

1. with ``--with-ray`` on a worker node of a multi-node job (``MASTER_ADDR`` names another host):
   join the head and wait there — nothing else runs on a worker node;
2. translate the config (``astuner.backbone.trinity.config``), write
   ``<exp_dir>/trinity_config.yaml`` and validate it with Trinity's ``load_config`` +
   ``check_and_update``; the validation taskset is left out when the validation split is empty;
3. with ``--with-ray``: start (or reuse) the local Ray head, else use the running cluster
   (``RAY_ADDRESS`` or Ray's own discovery);
4. connect to Ray with astuner's variables in the job's runtime environment (every Trinity actor
   gets ``TRINITY_PLUGIN_DIRS`` → astuner's plugin, ``ASTUNER_CONFIG_REDIRECT`` →
   ``yaml_backup.yaml``, ``ASTUNER_LAUNCH_DIR``, and NVLink multicast off for the NCCL weight sync:
   ``NCCL_NVLS_ENABLE=0`` and its PyTorch/NVSHMEM twins unless set in astuner's environment,
   ``astuner.ray_service.multicast_off_env``), and check that the cluster has the GPUs the
   config asks for (``cluster.node_num * gpu_per_node``) — Trinity would otherwise wait forever
   for its placement groups;
5. ``trinity.cli.launcher.run_stage`` (explorer + trainer, checkpoints under
   ``checkpoint_root_dir/project/name``). Exit code 0 when Trinity reports success, else 1.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from astuner import procs
from astuner.backbone.runtime import SetupError
from astuner.backbone.trinity.colocate import COLOCATE_ENV
from astuner.backbone.trinity.outcome import log_offset, trained_steps, trainer_failure, trainer_log
from astuner.backbone.trinity.config import (
    CONFIG_ENV,
    LAUNCH_DIR_ENV,
    PLUGIN_DIR,
    TranslationError,
    check_with_trinity,
    translate,
    write_trinity_config,
)
from astuner.ray_service import (
    RayError,
    RayNode,
    cluster_settings,
    describe,
    ensure_ray,
    multicast_off_env,
    wait_as_worker,
)

if TYPE_CHECKING:
    import argparse

    from trinity.common.config import Config as TrinityConfig

    from astuner.config.schema import Config

KEEP_RAY_ENV = "ASTUNER_KEEP_RAY"
"""Set to ``1`` to keep the Ray head a ``--with-ray`` run started after the run ends."""


def has_validation_tasks(config: Config) -> bool:
    from astuner.backbone.trinity.worker import tasks_for_split
    from astuner.task_reader import TaskReaderError

    try:
        return bool(tasks_for_split(config, "validation"))
    except TaskReaderError:
        return False


def check_before_launch(config: Config) -> None:
    """Fail here, in one line, on what would otherwise fail inside a Ray actor: the workflow and judge
    must resolve, the training split must have tasks (``TaskReaderError`` names a bad reader) and an
    installed ``trl`` must be one Trinity's trainer can import (``trl_clash``)."""
    from astuner.backbone.trinity.worker import tasks_for_split
    from astuner.components import judge_class, workflow_class
    from astuner.resolve import ResolveError

    a = config.astuner
    for key, load, spec in (("astuner.rollout.agentscope_workflow", workflow_class, a.rollout.agentscope_workflow),
                            ("astuner.task_judge.judge_protocol", judge_class, a.task_judge.judge_protocol)):
        try:
            load(spec)
        except ResolveError as exc:
            raise SetupError(f"{key}: {exc}") from None
    if not tasks_for_split(config, "train"):
        raise SetupError("astuner.task_reader: the training split has no tasks")
    clash = trl_clash()
    if clash:
        raise SetupError(clash)


def trl_clash() -> str | None:
    """Why the installed ``trl`` would kill Trinity's trainer, or None.

    Trinity-RFT 0.6.0's trainer imports ``trl.experimental.ppo`` whenever ``trl`` is importable
    (``trinity/trainer/verl_legacy/monkey_patch.py``); trl 1.x has no such module, so the trainer
    actor dies at start-up, minutes into the run (seen on an H100 with trl 1.16.0, 2026-12-06).
    Checked: trl 0.29.0 has the module, 0.25.x and 1.16.0 do not. Not guaranteed: that Ray workers
    on other nodes have the same trl as this process.
    """
    import importlib.util
    from importlib.metadata import PackageNotFoundError, version

    if importlib.util.find_spec("trl") is None:
        return None
    try:
        found = importlib.util.find_spec("trl.experimental.ppo") is not None
    except Exception:  # an unimportable trl fails the trainer the same way
        found = False
    if found:
        return None
    try:
        installed = f"trl {version('trl')}"
    except PackageNotFoundError:
        installed = "trl"
    return (f"{installed} is installed and has no trl.experimental.ppo, which trinity-rft 0.6.0's trainer imports "
            "whenever trl is importable: uninstall trl (pip uninstall trl) or install one that has it (e.g. trl==0.29.0)")


def prepare(config: Config, exp_dir: Path) -> tuple[Path, TrinityConfig]:
    """Step 2: write ``trinity_config.yaml`` and return it with Trinity's checked config."""
    check_before_launch(config)
    with_validation = has_validation_tasks(config)
    try:
        translation = translate(config, exp_dir, with_validation=with_validation)
    except TranslationError as exc:
        raise SetupError(str(exc)) from None
    print(f"astuner: GPU layout {translation.layout.describe()}")
    for note in translation.notes:
        print(f"astuner: {note}")
    if not with_validation:
        print("astuner: the validation split is empty; Trinity will not evaluate (no eval taskset)")
    path = write_trinity_config(translation.data, exp_dir)
    try:
        checked = check_with_trinity(path)
    except TranslationError as exc:
        raise SetupError(str(exc)) from None
    print(f"astuner: Trinity config {path} (checked by Trinity; checkpoints in {checked.checkpoint_job_dir})")
    return path, checked


def actor_env(exp_dir: Path, mode: str = "") -> dict[str, str]:
    """Variables every Trinity actor gets, on top of Trinity's own (``Config.get_envs``); in
    ``mode`` colocate also the flag that makes the plugin start the engine on the shared GPU."""
    env = {
        CONFIG_ENV: str(Path(exp_dir).resolve() / "yaml_backup.yaml"),
        LAUNCH_DIR_ENV: os.getcwd(),
        "TRINITY_PLUGIN_DIRS": str(PLUGIN_DIR),
        **multicast_off_env(),
    }
    if mode == "colocate":
        env[COLOCATE_ENV] = "1"
    return env


def connect(checked: TrinityConfig, env: dict[str, str]) -> None:
    """Step 4: ``ray.init`` with astuner's runtime env, then the GPU-count check."""
    import ray

    os.environ.update(env)
    try:
        ray.init(
            address=checked.cluster.ray_address,
            namespace=checked.ray_namespace,
            ignore_reinit_error=True,
            runtime_env={"env_vars": {**checked.get_envs(), **env}},
            log_to_driver=True,
        )
    except ConnectionError as exc:
        raise RayError(
            f"Ray is not running at {os.environ.get('RAY_ADDRESS') or checked.cluster.ray_address!r} "
            f"({' '.join(str(exc).split())[:160]}); start it with --with-ray or 'ray start --head'"
        ) from None
    need = int(checked.cluster.node_num) * int(checked.cluster.gpu_per_node)
    have = _wait_for_gpus(ray, need)
    if have < need:
        ray.shutdown()
        raise RayError(
            f"the Ray cluster has {have} GPU(s) but the config asks for {need} "
            f"(trainer_common.nnodes * n_gpus_per_node = cluster.node_num * gpu_per_node); "
            "set them to the cluster you have"
        )


def _wait_for_gpus(ray: Any, need: int) -> int:
    """The cluster's GPU count, waiting (multi-node: up to ``ASTUNER_RAY_TIMEOUT_S``) for nodes still joining."""
    import time

    multi_node = bool(os.environ.get("MASTER_ADDR"))
    deadline = time.monotonic() + (float(os.environ.get("ASTUNER_RAY_TIMEOUT_S", "600")) if multi_node else 5.0)
    told = False
    while True:
        have = int(ray.cluster_resources().get("GPU", 0))
        if have >= need or time.monotonic() > deadline:
            return have
        if multi_node and not told:
            print(f"astuner: waiting for worker nodes to join: {have} of {need} GPUs in the Ray cluster", flush=True)
            told = True
        time.sleep(2.0)


def launch(config: Config, exp_dir: Path, args: argparse.Namespace | None = None) -> int:
    """Steps 1 to 5 of the module docstring; ``args`` is the command line (its ``--with-ray``; None: off)."""
    with_ray = bool(args is not None and args.with_ray)
    cluster = cluster_settings() if with_ray else None
    if cluster is not None and not cluster[2]:
        node = ensure_ray()
        print(f"astuner: {describe(node)}")
        return wait_as_worker(node)
    _, checked = prepare(config, exp_dir)
    node = None
    if with_ray:
        node = ensure_ray()
        print(f"astuner: {describe(node)}", flush=True)
    try:
        return _train(exp_dir, checked)
    finally:
        if node is not None and node.started:
            stop_started_head(node)


def stop_started_head(node: RayNode) -> None:
    """End the Ray head this launch started (``ray stop`` or its process tree, as ``--kill ray`` does), so a
    finished, failed or interrupted run leaves no Ray process; ``ASTUNER_KEEP_RAY=1`` keeps it for the next run.
    A head that an earlier run started, or one astuner did not start, is never stopped here."""
    if os.environ.get(KEEP_RAY_ENV) == "1":
        print(f"astuner: {KEEP_RAY_ENV}=1: the Ray head (pid {node.pid}) keeps running; end it with 'astuner --kill ray'")
        return
    report = procs.kill("ray", only_pid=node.pid, grace_s=10.0)
    print(f"astuner: stopped the Ray head this run started (pid {node.pid}; "
          f"{len(report.descendants)} process(es) below it)", flush=True)


def _train(exp_dir: Path, checked: TrinityConfig) -> int:
    from astuner.backbone.trinity.plugin import register

    register()
    connect(checked, actor_env(exp_dir, str(checked.mode)))
    from trinity.cli.launcher import run_stage

    job_dir = Path(checked.checkpoint_job_dir)
    offset = log_offset(job_dir)
    status = run_stage(checked)
    failure = trainer_failure(job_dir, offset) if getattr(status, "success", False) else None
    if failure is not None:
        print(f"astuner: Trinity's trainer failed after step {trained_steps(job_dir) or 0}: {failure} "
              f"(log: {trainer_log(job_dir)})")
        return 1
    if getattr(status, "success", False):
        print(f"astuner: Trinity finished ({status.stage}) at trainer step {trained_steps(job_dir)}; "
              f"checkpoints in {checked.checkpoint_job_dir}")
        return 0
    error = getattr(status, "error", None)
    print(f"astuner: Trinity failed ({getattr(status, 'stage', '?')}): "
          f"{getattr(error, 'type_name', '')}: {getattr(error, 'message', '')}")
    return 1
