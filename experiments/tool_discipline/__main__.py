"""``python -m experiments.tool_discipline --profile gpu|cpu --out DIR``: the whole experiment.

Run it from the repository root: ``experiments`` is not part of the installed package.

``--set FIELD=VALUE`` changes one field of the profile for this run (``n_sft=32000``,
``sft.steps=1200``, ``rates.no_print=0.3``, ``trace_processes=8``), ``--grpo KEY=VALUE`` adds a
config override for the GRPO phase (``astuner.trainer_common.optim.lr=2e-4``): sweeps without editing
``profiles.py``. The run's ``results.json`` records the settings it used.

Ctrl-C and SIGTERM stop the run, the GRPO phase's child with it (exit 130 and 143).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from experiments.tool_discipline.profiles import Profile


def with_settings(profile: Profile, assignments: list[str]) -> Profile:
    """``profile`` with each ``FIELD=VALUE`` (dotted for ``sft.`` and ``rates.``) applied; the value
    is converted to the field's current type. Unknown fields raise ValueError."""
    for assignment in assignments:
        key, sep, text = assignment.partition("=")
        if not sep:
            raise ValueError(f"--set needs FIELD=VALUE, got {assignment!r}")
        profile = _replace(profile, key.strip().split("."), text.strip(), key)
    return profile


def _replace(obj: Any, path: list[str], text: str, key: str) -> Any:
    names = {f.name for f in dataclasses.fields(obj)}
    if path[0] not in names:
        raise ValueError(f"unknown setting {key!r}; {type(obj).__name__} has: {', '.join(sorted(names))}")
    current = getattr(obj, path[0])
    if len(path) > 1:
        return dataclasses.replace(obj, **{path[0]: _replace(current, path[1:], text, key)})
    if dataclasses.is_dataclass(current) or isinstance(current, tuple):
        raise ValueError(f"{key!r} is not a single value (use its fields, or --grpo for GRPO overrides)")
    if isinstance(current, bool):
        value: Any = text.lower() in ("1", "true", "yes")
    else:
        value = type(current)(text)
    return dataclasses.replace(obj, **{path[0]: value})


def main(argv: list[str] | None = None) -> int:
    from astuner.interrupt import sigterm_raises
    from experiments.tool_discipline.pipeline import run
    from experiments.tool_discipline.profiles import PROFILES

    parser = argparse.ArgumentParser(prog="python -m experiments.tool_discipline", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", choices=sorted(PROFILES), default="gpu", help="gpu: the full run; cpu: the CI miniature")
    parser.add_argument("--out", default="saved_experiments/tool_discipline", help="output directory (created)")
    parser.add_argument("--device", default="auto", help="torch device for SFT and GRPO (auto: cuda if available)")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="change a profile field (repeatable)")
    parser.add_argument("--grpo", action="append", default=[], metavar="KEY=VALUE", help="extra GRPO config override (repeatable)")
    args = parser.parse_args(argv)
    try:
        profile = with_settings(PROFILES[args.profile], args.set)
    except ValueError as exc:
        parser.error(str(exc))
    profile = dataclasses.replace(profile, grpo_overrides=(*profile.grpo_overrides, *args.grpo))
    os.environ.setdefault("AGENTSCOPE_DISABLE_CONSOLE_OUTPUT", "true")
    # SIGTERM raises (exit 143) instead of ending this process at once, so the GRPO phase's child,
    # in a process group of its own, is stopped as on Ctrl-C rather than left running.
    with sigterm_raises():
        results = run(profile, args.out, device=args.device)
    print("targets met:" if results["targets"]["all_met"] else "targets NOT met:", results["targets"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
