"""Turn the outputs of ``benchmarks/trinity_gpu.sh`` (fetched from the GPU machine) into one JSON record.

Usage (on this machine, after the device calls; each DIR is a fetched ``$OUT`` folder holding
``<stage>/`` and ``<stage>.tgz``)::

    python benchmarks/trinity_gpu_report.py --card "NVIDIA H100 80GB HBM3" --commit <sha> DIR [DIR ...] \
        > docs/results/trinity_gpu.json

For each local-backbone run (``local``, ``vllm_reload``, ``vllm_restart``) it reads the run's
``metrics.jsonl`` and gives the median seconds per GRPO step, rollout and trainer tokens/s, weight
sync seconds, the trainer's peak CUDA memory, the card's peak memory (``nvidia-smi`` trace, vLLM
included) and validation before -> after. For the Trinity run, whose metrics come from Trinity's own
monitor, it reads the launcher's log: the times of its milestones (explorer ready, engine created,
models ready, runners ready, first evaluation, each finished step), the completions vLLM served, the
exit code, and the card's peak memory (the ``kill`` stage's run likewise, with the processes
alive before ``--kill``). The ``speed`` stage's ``local_vs_trl.json`` is kept whole under
``speed``. Medians over the steps of one run; nothing is averaged across runs. Not guaranteed: that
logs of another Trinity version have the same milestone lines.
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import statistics
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

LOCAL_RUNS = ("local", "vllm_reload", "vllm_restart")
VAL_KEYS = ("success_rate", "reward_mean", "bad_case/malformed_tool_call", "bad_case/empty_tool_stdout",
            "bad_case/answer_before_tool_response")
MILESTONES = {
    "ray_head_started": r"started Ray head",
    "explorer_initialized": r"Finished initializing Explorer",
    "engine_created": r"Creating inference_model .* \(astuner's colocate start",
    "trainer_ready": r"Trainer is ready",
    "models_ready": r"All models are ready",
    "explorer_ready": r"Explorer is ready",
    "first_evaluation_started": r"Evaluation at step 0 started",
    "deadline_shutdown": r"Scheduler stopped",
}
STAMP = re.compile(r"(\d\d-\d\d \d\d:\d\d:\d\d)")


def card_peak_mib(csv: Path) -> int | None:
    """The highest ``memory.used`` of an ``nvidia-smi --format=csv,noheader`` trace."""
    if not csv.exists():
        return None
    values = [int(m.group(1)) for line in csv.read_text().splitlines() if (m := re.search(r",\s*(\d+) MiB", line))]
    return max(values) if values else None


def median(rows: list[dict[str, Any]], key: str) -> float | None:
    values = [float(r[key]) for r in rows if key in r]
    return round(statistics.median(values), 4) if values else None


def local_run(name: str, run_dir: Path, trace: Path) -> dict[str, Any]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    steps = [r for r in rows if "step_time_s" in r]
    vals = [r for r in rows if "val/success_rate" in r]
    return {
        "run": name,
        "steps": len(steps),
        "median_step_s": median(steps, "step_time_s"),
        "median_rollout_s": median(steps, "rollout_time_s"),
        "median_train_s": median(steps, "train_time_s"),
        "rollout_tokens_per_s": median(steps, "rollout_tokens_per_s"),
        "trainer_tokens_per_s": median(steps, "train_tokens_per_s"),
        "weight_sync_s": median(steps, "weight_sync_s"),
        "trainer_peak_memory_gb": max((r["peak_memory_gb"] for r in steps if "peak_memory_gb" in r), default=None),
        "card_peak_memory_mib": card_peak_mib(trace),
        "validation": {
            key: [round(vals[0][f"val/{key}"], 4), round(vals[-1][f"val/{key}"], 4)]
            for key in VAL_KEYS if vals and f"val/{key}" in vals[0] and f"val/{key}" in vals[-1]
        },
        "validation_steps": [vals[0]["step"], vals[-1]["step"]] if vals else [],
    }


def trinity_run(stage_dir: Path, name: str = "trinity") -> dict[str, Any]:
    """A Trinity run of stage ``name`` (``trinity``, or ``kill``: a run ended by ``--kill`` while live)."""
    log = (stage_dir / f"{name}.log").read_text(errors="replace")
    marks: dict[str, str] = {}
    for mark, pattern in MILESTONES.items():
        for line in log.splitlines():
            if re.search(pattern, line):
                stamp = STAMP.search(line)
                marks[mark] = stamp.group(1) if stamp else "seen"
                break
    steps = sorted({int(m.group(1)) for m in re.finditer(r"\bStep (\d+): \{", log)})
    runners = re.search(r"Starting Scheduler with (\d+) runners", log)
    trainer = monitor_rows(log, "Trainer")
    explorer = [row for row in monitor_rows(log, "Explorer") if "rollout/success/mean" in row]
    evals = [row for row in monitor_rows(log, "Explorer") if any(k.startswith("eval/") for k in row)]
    synced = [clock(m.group(1)) for m in re.finditer(STAMP.pattern + r".*Explorer sync_weights at step [1-9]\d* finished", log)]
    return {
        "run": name,
        "milestones": marks,
        "workflow_runners": int(runners.group(1)) if runners else None,
        "completions_served": log.count("POST /v1/completions HTTP/1.1\" 200"),
        "monitor_steps_logged": steps,
        "trainer_steps_finished": len(trainer),
        "median_wall_per_step_s": statistics.median(b - a for a, b in zip(synced, synced[1:])) if len(synced) > 1 else None,
        "median_trainer_step_s": median(trainer, "time/step"),
        "median_update_actor_s": median(trainer, "time/update_actor"),
        "median_ref_logprob_s": median(trainer, "time/ref"),
        "trainer_tokens_per_s": median(trainer, "perf/throughput"),
        "trainer_tokens_per_step": median(trainer, "perf/total_num_tokens"),
        "trainer_peak_memory_gb": max((r["actor/perf/max_memory_allocated_gb"] for r in trainer
                                       if "actor/perf/max_memory_allocated_gb" in r), default=None),
        "median_rollout_s": median(explorer, "rollout/time/task_execution/mean"),
        "rollout_success_by_step": [r["rollout/success/mean"] for r in explorer],
        "validation_steps": [int(m.group(1)) for m in re.finditer(r"\bStep (\d+): \{'eval/", log)],
        "validation_before": {k: v for k, v in (evals[0] if evals else {}).items() if k.endswith("/mean@2")},
        "validation_after": {k: v for k, v in (evals[-1] if len(evals) > 1 else {}).items() if k.endswith("/mean@2")},
        "card_peak_memory_mib": card_peak_mib(stage_dir / f"gpu_mem_{name}.csv"),
        "leftover_processes_after_kill": len((stage_dir / "leftover_ps.txt").read_text().splitlines())
        if (stage_dir / "leftover_ps.txt").exists() else None,
        **killed(stage_dir),
    }


def killed(stage_dir: Path) -> dict[str, Any]:
    """For the ``kill`` stage: the processes alive before ``--kill`` and what ``--kill`` reported."""
    live, said = stage_dir / "live_ps.txt", stage_dir / "kill_cmd.log"
    if not live.exists():
        return {}
    return {"live_processes_before_kill": len(live.read_text().splitlines()),
            "kill_output": said.read_text(errors="replace").strip() if said.exists() else None}


def monitor_rows(log: str, actor: str) -> list[dict[str, Any]]:
    """The metric dicts Trinity's monitor logged from ``actor`` (``Trainer`` or ``Explorer``), in order."""
    rows = []
    for line in log.splitlines():
        if f"({actor} pid=" in line and "monitor.py" in line and ": {" in line:
            try:
                rows.append(ast.literal_eval(line[line.index("{"):].strip()))
            except (ValueError, SyntaxError):
                continue
    return rows


def clock(stamp: str) -> float:
    """Seconds since midnight of a ``MM-DD HH:MM:SS`` stamp (runs here do not cross midnight)."""
    h, m, sec = stamp.split()[-1].split(":")
    return int(h) * 3600 + int(m) * 60 + float(sec)


def unpack(folder: Path, work: Path) -> dict[str, Path]:
    """Each run's directory (``<run>/grpo``) from the stage archives in ``folder``."""
    found: dict[str, Path] = {}
    for archive in sorted(folder.glob("*.tgz")):
        name = archive.name.removesuffix(".tgz")
        with tarfile.open(archive) as tar:
            tar.extractall(work / name, filter="data")
        for metrics in (work / name).rglob("metrics.jsonl"):
            found[name] = metrics.parent
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path, help="fetched $OUT folders of trinity_gpu.sh calls")
    parser.add_argument("--card", required=True, help="the GPU, as nvidia-smi names it")
    parser.add_argument("--commit", required=True, help="the commit the runs were made from")
    parser.add_argument("--date", default="", help="the day of the runs (YYYY-MM-DD)")
    parser.add_argument("--stage", action="append", default=[], metavar="RUN=COMMAND",
                        help="the trinity_gpu.sh call that made RUN (repeatable)")
    parser.add_argument("--exit", action="append", default=[], metavar="RUN=CODE", help="RUN's exit code (repeatable)")
    args = parser.parse_args(argv)
    record: dict[str, Any] = {"date": args.date, "card": args.card, "commit": args.commit, "runs": []}
    stages = dict(item.split("=", 1) for item in args.stage)
    exits = {name: int(code) for name, code in (item.split("=", 1) for item in args.exit)}
    with tempfile.TemporaryDirectory() as tmp:
        for folder in args.folders:
            runs = unpack(folder, Path(tmp) / folder.name)
            for name in LOCAL_RUNS:
                if name in runs:
                    stage = "vllm" if name.startswith("vllm") else name
                    trace = folder / stage / f"gpu_mem_{name}.csv"
                    entry = local_run(name, runs[name], trace)
                    cmd = folder / stage / f"{name}.cmd"
                    entry["command"] = cmd.read_text().strip().removeprefix("+ ") if cmd.exists() else None
                    record["runs"].append(entry)
            for name in ("trinity", "kill"):
                if (folder / name / f"{name}.log").exists():
                    entry = trinity_run(folder / name, name)
                    cmd = folder / name / f"{name}.cmd"
                    entry["command"] = cmd.read_text().strip().removeprefix("+ ") if cmd.exists() else None
                    record["runs"].append(entry)
            speed = folder / "speed" / "local_vs_trl.json"
            if speed.exists():
                record["speed"] = {"command": (folder / "speed" / "speed.cmd").read_text().strip().removeprefix("+ ")
                                   if (folder / "speed" / "speed.cmd").exists() else None,
                                   "card_peak_memory_mib": card_peak_mib(folder / "speed" / "gpu_mem_speed.csv"),
                                   "result": json.loads(speed.read_text())}
    for entry in record["runs"]:
        entry["stage_call"] = stages.get(entry["run"])
        entry["exit"] = exits.get(entry["run"])
    json.dump(record, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
