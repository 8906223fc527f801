"""Teacher-trace collection rate of the tool-discipline experiment: one process vs several.

What is measured: the wall time of ``traces.collect_teacher`` over the same SFT problems with
``processes=1`` and with each ``--processes`` value, alternating the settings for ``--repeats``
rounds (so load drift hits all alike), and the resulting rollouts per second. Every setting's
results are checked to equal the one-process results (same rollouts, rewards, flags and token ids),
since the speed-up is only worth having if the data are the same.

How: the pipeline's own pieces — the tutorial's ``tool_discipline.yaml`` with the profile's
overrides, the profile's teacher rates — so the work per rollout is the experiment's, except for
the tokenizer: astuner's built-in tiny one (the pipeline trains its own on teacher transcripts, which
changes token counts, not the work). The process pool's start-up
(spawning Python, importing torch, transformers and agentscope in each process) is inside the time.

Usage (from the repository root)::

    python benchmarks/teacher_traces.py                       # 1600 problems, 1 vs 2 processes
    python benchmarks/teacher_traces.py --profile gpu --problems 16000 --processes 6 12 --repeats 1  # device

Not measured: the rest of the pipeline; machines with more cores than ``--processes``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from experiments.tool_discipline import problems as gen  # noqa: E402
from experiments.tool_discipline import traces  # noqa: E402
from experiments.tool_discipline.pipeline import CONFIG, load_tasks, path_overrides  # noqa: E402
from experiments.tool_discipline.profiles import PROFILES  # noqa: E402


def digest(results: list) -> list:
    return [(r.rollout_id, r.reward, r.error, sorted(k for k, v in r.bad_cases.items() if v),
             [s.token_ids for s in r.samples]) for r in results]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", choices=sorted(PROFILES), default="cpu")
    parser.add_argument("--problems", type=int, default=1600)
    parser.add_argument("--processes", type=int, nargs="+", default=[2])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("AGENTSCOPE_DISABLE_CONSOLE_OUTPUT", "true")

    from transformers import AutoTokenizer

    from astuner.config import load_config
    from astuner.tiny_model import build_tiny_model

    profile = PROFILES[args.profile]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        (problems,) = gen.generate_sets((args.problems,), seed=profile.data_seed, templates=gen.TEMPLATES[: profile.templates])
        gen.write_jsonl(problems, out / "data" / "sft.jsonl")
        gen.write_jsonl(problems[:1], out / "data" / "val.jsonl")
        overrides = [*path_overrides(out), *profile.grpo_overrides,
                     f"astuner.task_reader.dataset_file.training.file_path={out / 'data' / 'sft.jsonl'}",
                     f"astuner.task_reader.dataset_file.validation.file_path={out / 'data' / 'val.jsonl'}"]
        config = load_config(CONFIG, overrides)
        tasks, _ = load_tasks(config)
        tokenizer_dir = build_tiny_model(out / "init", vocab_size=profile.vocab_size, hidden_size=16, num_layers=1)
        AutoTokenizer.from_pretrained(str(tokenizer_dir))
        spec = traces.TeacherSpec(tuple(problems), str(tokenizer_dir), profile.rates, profile.teacher_seed)

        settings = [1, *args.processes]
        times: dict[int, list[float]] = {n: [] for n in settings}
        reference = None
        for _ in range(args.repeats):
            for n in settings:
                started = time.perf_counter()
                results = traces.collect_teacher(config, spec, tasks, parallel=profile.trace_parallel, processes=n)
                times[n].append(time.perf_counter() - started)
                got = digest(results)
                reference = reference or got
                if got != reference:
                    raise SystemExit(f"processes={n}: results differ from the one-process results")

    print(f"Teacher traces: {args.problems} problems of profile {args.profile} ({profile.templates} templates), "
          f"pool_size {config.astuner.python_tool.pool_size}, {args.repeats} rounds; "
          f"{os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, Python {platform.python_version()}")
    print()
    print("| processes | wall time p50 (s) | rollouts/s | speed-up | results equal |")
    print("| ---: | ---: | ---: | ---: | --- |")
    base = statistics.median(times[1])
    for n in settings:
        t = statistics.median(times[n])
        print(f"| {n} | {t:.1f} | {args.problems / t:.0f} | {base / t:.2f}x | yes |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
