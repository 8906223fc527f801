"""``astuner`` command line (``python launcher.py`` is the same entry point).

Exit codes: 0 success; 2 usage or config error (one line on stderr, no traceback); 1 runtime
failure. The ``debug`` backbone runs in this process, so debugger breakpoints in workflow and
judge code are hit.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

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
    p.add_argument("--conf", default="", help="experiment YAML (root key astuner: or astune:)")
    p.add_argument(
        "--backbone",
        default="trinity",
        help="debug: in-process rollouts, no training (breakpoints work); "
        "trinity: Trinity-RFT on Ray; local: one-process GRPO. Default: trinity",
    )
    p.add_argument("--exp-dir", default="saved_experiments", help="where <experiment name>/ is written (default: saved_experiments)")
    p.add_argument("--with-ray", action="store_true", help="start a local Ray head for the trinity backbone")
    p.add_argument("--with-logview", action="store_true", help="serve the token-level log viewer for this run")
    p.add_argument(
        "--kill",
        default="",
        help="'|'-separated keywords: end processes astuner itself started whose command matches "
        "(never other processes); without --conf, only kill",
    )
    p.add_argument("--autokill", action="store_true", help=f"same as --kill '{AUTOKILL}'")
    p.add_argument("--db", "--debug", dest="db", default="", help="debug tags: turns on Ray post-mortem debugging env vars")
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
        return 130


def _run(args: argparse.Namespace) -> int:
    if args.backbone not in BACKBONES:
        raise UsageError(f"--backbone: unknown backbone {args.backbone!r} (choose from {', '.join(BACKBONES)})")
    keywords = "|".join(k for k in (AUTOKILL if args.autokill else "", args.kill) if k)
    if keywords:
        from astuner.procs import kill_registered

        pids = kill_registered(keywords)
        print(f"astuner: killed {len(pids)} astuner-started process(es): {pids}" if pids
              else f"astuner: no astuner-started processes match {keywords!r}")
    if not args.conf:
        if keywords:
            return 0
        raise UsageError("--conf is required (a YAML file); see astuner --help")
    if args.db:
        os.environ.update({"RAY_DEBUG_POST_MORTEM": "1", "DEBUG_TAGS": args.db, "RAY_record_task_actor_creation_sites": "true"})
        print("astuner: debug mode is on")
    return _run_backbone(args)


def _run_backbone(args: argparse.Namespace) -> int:
    """Load the config, prepare the experiment dir, and hand over to the chosen backbone."""
    from astuner.backbone import load_backbone
    from astuner.backbone.runtime import SetupError
    from astuner.config import ConfigError, load_config, prepare_experiment
    from astuner.task_reader import TaskReaderError

    run = load_backbone(args.backbone)
    if run is None:
        raise UsageError(f"--backbone={args.backbone} is not available in this version yet; use --backbone=debug")
    conf = Path(args.conf)
    if conf.suffix not in (".yaml", ".yml"):
        raise UsageError(f"--conf: {args.conf!r} is not a .yaml file")
    try:
        config = load_config(conf, args.overrides, backbone=args.backbone)
        exp_dir = prepare_experiment(config, conf, args.exp_dir)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    if args.with_ray and args.backbone != "trinity":
        print(f"astuner: --with-ray is ignored by the {args.backbone} backbone (it never uses Ray)")
    if args.with_logview:
        print(f"astuner: the log viewer is not part of this version yet; token-level logs go to {exp_dir / 'rollouts'}")
    print(f"astuner: experiment {config.astuner.experiment_name} -> {exp_dir}")
    try:
        return run(config, exp_dir, args)
    except (SetupError, TaskReaderError) as exc:
        raise UsageError(f"{conf.name}: {exc}") from None
