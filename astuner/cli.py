"""``astuner`` command line (``python launcher.py`` is the same entry point).

Exit codes: 0 success; 2 usage or config error (one line on stderr, no traceback); 1 runtime
failure; 130 Ctrl-C; 143 SIGTERM (the debug and local backbones turn SIGTERM into ``Terminated``;
the trinity backbone leaves the signal its own action). A config error is found before anything is created and before
torch, transformers or agentscope are imported (``astuner.preflight``). The ``debug`` backbone runs
in this process, so debugger breakpoints in workflow and judge code are hit, also when a debugger
attaches through ``--debugpy [HOST:]PORT`` (``astuner.debugging``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from astuner import __version__, debugging
from astuner.interrupt import SIGINT_EXIT_CODE, SIGTERM_EXIT_CODE, Terminated

if TYPE_CHECKING:
    from astuner.config import Config

AUTOKILL = "ray|vllm|VLLM|python"
BACKBONES = ("debug", "trinity", "local")


class UsageError(Exception):
    """Bad flags or config; reported in one line with exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="astuner",
        description="AgentScope Tuner: roll out, judge and train the LLM behind an AgentScope agent.",
        epilog="Trailing KEY=VALUE arguments override config keys, e.g. astuner.rollout.num_repeat=2.",
    )
    p.add_argument("--version", action="version", version=f"astuner {__version__}")
    p.add_argument("--conf", default="", help="experiment YAML (root key astuner: or astune:)")
    p.add_argument(
        "--backbone",
        default="trinity",
        metavar="{" + ",".join(BACKBONES) + "}",
        help="debug: in-process rollouts, no training (breakpoints work); "
        "trinity: Trinity-RFT on Ray (GPUs); local: one-process GRPO (one GPU, or CPU). Default: trinity",
    )
    p.add_argument("--exp-dir", default="saved_experiments", help="where <experiment name>/ is written (default: saved_experiments)")
    p.add_argument(
        "--with-ray",
        action="store_true",
        help="start a local Ray head for the trinity backbone (or join MASTER_ADDR:MASTER_PORT); "
        "without --conf, only start it",
    )
    p.add_argument(
        "--skip-gpu-check",
        action="store_true",
        help="trinity backbone: launch even if nvidia-smi is missing or a GPU has under 95%% free memory",
    )
    p.add_argument(
        "--with-logview",
        action="store_true",
        help="serve the token-level log viewer on 127.0.0.1 (astuner.logview.port, default 8181) for this run; "
        "without --conf, browse --exp-dir until Ctrl-C",
    )
    p.add_argument("--logview-stay", action="store_true", help="keep serving the log viewer after the run until Ctrl-C")
    p.add_argument(
        "--kill",
        default="",
        help="'|'-separated keywords: end processes astuner itself started (any of your runs, live or not) "
        "whose command matches (never other processes); without --conf, only kill",
    )
    p.add_argument("--autokill", action="store_true", help=f"like --kill '{AUTOKILL}', but only processes of runs that have ended (or of this run)")
    p.add_argument("--db", "--debug", dest="db", default="", help="debug tags: turns on Ray post-mortem debugging env vars")
    debugging.add_arguments(p)
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides (dotted key paths)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    except UsageError as exc:
        print(f"astuner: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("astuner: interrupted", file=sys.stderr)
        return SIGINT_EXIT_CODE
    except Terminated:
        print("astuner: terminated (SIGTERM)", file=sys.stderr)
        return SIGTERM_EXIT_CODE


def _run(args: argparse.Namespace) -> int:
    if args.backbone not in BACKBONES:
        raise UsageError(f"--backbone: unknown backbone {args.backbone!r} (choose from {', '.join(BACKBONES)})")
    debugpy_request = _debugpy_request(args)
    from astuner.procs import current_run, kill

    current_run()  # this run's id, inherited by every process it starts (the registry records it)
    for keywords, spare in ((args.kill, False), (AUTOKILL if args.autokill else "", True)):
        if not keywords:
            continue
        report = kill(keywords, spare_live_runs=spare)
        for note in report.notes:
            print(f"astuner: {note}")
        pids = report.pids
        print(f"astuner: killed {len(pids)} astuner-started process(es): {pids}" if pids
              else f"astuner: no astuner-started processes match {keywords!r}" + (" outside live runs" if spare else ""))
    if not args.conf:
        if args.with_ray:
            from astuner.ray_service import with_ray_only

            return _cluster_step(with_ray_only)
        if args.with_logview:
            return _browse(args)
        if args.kill or args.autokill:
            return 0
        raise UsageError("--conf is required (a YAML file); see astuner --help")
    if args.db:
        os.environ.update({"RAY_DEBUG_POST_MORTEM": "1", "DEBUG_TAGS": args.db, "RAY_record_task_actor_creation_sites": "true"})
        print("astuner: debug mode is on")
    return _run_backbone(args, debugpy_request)


def _debugpy_request(args: argparse.Namespace) -> debugging.DebugpyRequest | None:
    """``--debugpy``/``--wait-for-client`` checked before anything runs (``astuner.debugging``); they need ``--conf``."""
    try:
        request = debugging.request_from_flags(args.debugpy, args.wait_for_client)
    except debugging.DebugpyError as exc:
        raise UsageError(str(exc)) from None
    if request is not None and not args.conf:
        raise UsageError("--debugpy needs --conf: it debugs a run")
    return request


def _run_backbone(args: argparse.Namespace, debugpy_request: debugging.DebugpyRequest | None = None) -> int:
    """Check the whole config, choose the run's folder, create it, and hand over to the backbone.

    With ``--debugpy``, the debugger listens (and with ``--wait-for-client`` is waited for) right
    after the checks pass and before the run's folder is created.

    Nothing is created, and no heavy module (torch, transformers, agentscope) is imported, until
    the config and the files it names have passed the light checks (``astuner.preflight``).
    """
    from astuner.config import ConfigError

    conf = Path(args.conf)
    if conf.suffix not in (".yaml", ".yml"):
        raise UsageError(f"--conf: {args.conf!r} is not a .yaml file")
    from astuner.preflight import check_config

    try:
        loaded = check_config(conf, args.overrides, backbone=args.backbone)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    for note in loaded.notes:
        print(f"astuner: note: {note}", file=sys.stderr)
    config = loaded.config
    if args.backbone == "trinity" and not args.skip_gpu_check:
        _check_gpus()
    if debugpy_request is not None:
        try:
            debugging.start(debugpy_request, backbone=args.backbone)
        except debugging.DebugpyError as exc:
            raise UsageError(str(exc)) from None
    from astuner.backbone import load_backbone

    run = load_backbone(args.backbone)
    if run is None:
        raise UsageError(f"--backbone={args.backbone} is not available in this version yet; use --backbone=debug")
    exp_dir = _prepare_run(config, conf, Path(args.exp_dir))
    if args.with_ray and args.backbone != "trinity":
        print(f"astuner: --with-ray is ignored by the {args.backbone} backbone (it never uses Ray)")
    from astuner.backbone.runtime import SetupError
    from astuner.task_reader import TaskReaderError

    try:
        with _logview(args, config, exp_dir):
            return _cluster_step(lambda: run(config, exp_dir, args))
    except (SetupError, TaskReaderError) as exc:
        raise UsageError(f"{conf.name}: {exc}") from None


def _prepare_run(config: Config, conf: Path, exp_root: Path) -> Path:
    """Name the run once (a resumed run keeps its own name), create its folder, and say which it is."""
    from astuner.backbone.resume import choose_run
    from astuner.config import prepare_experiment

    choice = choose_run(config, conf, Path(os.path.abspath(exp_root.expanduser())))
    exp_dir = prepare_experiment(config, conf, choice.directory.parent, name=choice.name)
    resumes = f" (resuming from {choice.resume_from.name})" if choice.resume_from is not None else ""
    print(f"astuner: experiment {choice.name} -> {exp_dir}{resumes}", flush=True)
    return exp_dir


def _logview(args: argparse.Namespace, config, exp_dir: Path):
    """The log viewer for the length of the run (``--with-logview``), or nothing."""
    if not args.with_logview:
        return contextlib.nullcontext()
    from astuner.logview.session import logview_for_run

    lv = config.astuner.logview
    return logview_for_run(exp_dir, port=lv.port, stay=args.logview_stay or lv.stay)


def _browse(args: argparse.Namespace) -> int:
    """``astuner --with-logview --exp-dir DIR`` without a config: browse past runs until Ctrl-C."""
    from astuner.logview.server import start_logview

    server = start_logview(Path(args.exp_dir))
    print(f"astuner: logview at {server.url} (Ctrl-C to stop)", flush=True)
    try:
        server.wait()
    finally:
        server.stop()
    return 0


def _check_gpus() -> None:
    """Upstream's pre-flight check for the cluster backbone: every GPU at least 95% free (else exit 2)."""
    from astuner.ray_service import GpuCheckError, check_gpus

    try:
        lines = check_gpus()
    except GpuCheckError as exc:
        raise UsageError(str(exc)) from None
    for line in lines:
        print(f"astuner: {line}")


def _cluster_step(step) -> int:
    """Run a step that may start or join Ray: one line on failure, exit 2 when Ray is not installed, else 1."""
    from astuner.ray_service import RayError

    try:
        return step()
    except RayError as exc:
        print(f"astuner: error: {exc}", file=sys.stderr)
        return 2 if exc.not_installed else 1


if __name__ == "__main__":
    sys.exit(main())
