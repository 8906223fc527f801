"""``python -m astuner.experiments.tool_discipline --profile gpu|cpu --out DIR``: the whole experiment."""

from __future__ import annotations

import argparse
import os


def main(argv: list[str] | None = None) -> int:
    from astuner.experiments.tool_discipline.pipeline import run
    from astuner.experiments.tool_discipline.profiles import PROFILES

    parser = argparse.ArgumentParser(prog="python -m astuner.experiments.tool_discipline", description=__doc__)
    parser.add_argument("--profile", choices=sorted(PROFILES), default="gpu", help="gpu: the full run; cpu: the CI miniature")
    parser.add_argument("--out", default="saved_experiments/tool_discipline", help="output directory (created)")
    parser.add_argument("--device", default="auto", help="torch device for SFT and GRPO (auto: cuda if available)")
    args = parser.parse_args(argv)
    os.environ.setdefault("AGENTSCOPE_DISABLE_CONSOLE_OUTPUT", "true")
    results = run(PROFILES[args.profile], args.out, device=args.device)
    print("targets met:" if results["targets"]["all_met"] else "targets NOT met:", results["targets"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
