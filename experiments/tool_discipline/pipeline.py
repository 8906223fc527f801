"""The whole experiment, phase by phase, into one output directory.

1. ``data/``: generated GSM8K-format problems: ``sft.jsonl`` (the teacher's), ``train.jsonl``
   (GRPO's) and ``val.jsonl``, pairwise disjoint. The policy never saw a GRPO or validation problem
   in SFT, as a pretrained model has not seen the RL data: GRPO's reward then measures and improves
   what generalises (copying numbers into code), not what SFT memorised. Measured on the H200:
   with SFT on the GRPO problems themselves (2500, ~100 epochs), training success reached 0.85-0.9
   while validation stayed at 0.74, failing on numbers miscopied into the code.
2. ``init/``: a tokenizer trained on teacher transcripts (Qwen-style special tokens and tools
   template, via ``build_tiny_model(..., corpus=...)``) and a random Qwen2 model. The transcripts
   come from a first teacher pass rendered with astuner's built-in tiny tokenizer (``bootstrap/``):
   the prompt text does not depend on the tokenizer, so this is the text the policy will read.
3. Teacher traces: every SFT problem through the unchanged ``ExampleMathLearn`` workflow
   with the teacher as engine; their samples (with loss masks) are the SFT data.
4. ``sft/model``: the cold-start policy after supervised fine-tuning.
5. ``grpo/``: ``astuner --conf tutorial/example_math_agent/tool_discipline.yaml --backbone=local``
   from ``sft/model`` (as a child process, ``grpo.py``), validating before the first step, every
   ``test_freq`` steps and after the last; the profile's ``deadline_s`` bounds the whole run.
6. ``results.json`` / ``results.md``: before/after table, targets, teacher statistics, example
   cases and the token view (``report.py``); ``curve.png``, ``tokens_before.png`` and
   ``tokens_after.png`` (``figures.py``).

Reading tasks goes through the normal ``dataset_file`` reader, exactly as GRPO reads them.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from experiments.tool_discipline import problems as gen
from experiments.tool_discipline import figures, grpo, report, sft, traces
from experiments.tool_discipline.profiles import Profile
from experiments.tool_discipline.teacher import TeacherEngine

if TYPE_CHECKING:
    from astuner.config.schema import Config
    from astuner.schema import Task

CONFIG = grpo.REPO / "tutorial" / "example_math_agent" / "tool_discipline.yaml"
DEADLINE_RESERVE_S = 30.0
"""Seconds of ``deadline_s`` kept back for stopping GRPO (``grpo.STOP_GRACE_S`` and the kill) and the report."""
MIN_GRPO_S = 60.0
"""Fewer seconds than this left for GRPO is an error: it could not even validate."""


def path_overrides(out: Path) -> list[str]:
    """Overrides that point the tutorial config at this run's files."""
    data = out / "data"
    return [
        f"astuner.task_reader.dataset_file.training.file_path={data / 'train.jsonl'}",
        f"astuner.task_reader.dataset_file.validation.file_path={data / 'val.jsonl'}",
        f"astuner.model.path={out / 'sft' / 'model'}",
        "astuner.local.resume_mode=disable",
    ]


def load_tasks(config: Config) -> tuple[list[Task], list[Task]]:
    """Training and validation tasks through the configured (``dataset_file``) reader, file order."""
    from astuner.task_reader import build_task_reader

    reader = build_task_reader(config.astuner.task_reader, seed=config.astuner.seed, shuffle=False)
    return reader.get_training_tasks(), reader.get_validation_tasks()


def draw_figures(results: dict[str, Any], out: Path) -> None:
    """``curve.png`` (curves and before/after bars) and a token view of the first before-training
    bad case (``tokens_before.png``) and of the after-training clean case (``tokens_after.png``)."""
    from astuner.metrics import read_metrics

    rows = read_metrics(out / "grpo" / "metrics.jsonl")
    title = f"tool discipline, profile {results['profile']} on {results['device']}: GRPO from the SFT policy"
    figures.plot_run(rows, results["before"], results["after"], out / "curve.png", title)
    for case in results["cases"]:
        if case.get("token_runs"):
            name = "tokens_before.png" if case["label"].startswith("before") else "tokens_after.png"
            figures.plot_tokens(case["token_runs"], out / name, f"{case['label']} (task {case['task_id']}, reward {case['reward']})")


def _log(message: str) -> None:
    print(f"tool_discipline: {message}", flush=True)


def run(profile: Profile, out: str | Path, *, device: str = "auto") -> dict[str, Any]:
    """Run every phase of ``profile`` into ``out``; returns the results (also in ``results.json``)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from astuner.chat_template import ChatTemplate
    from astuner.config import load_config
    from astuner.tiny_model import build_tiny_model

    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()

    templates = gen.TEMPLATES[: profile.templates]
    train_problems, val_problems, sft_problems = gen.generate_sets(
        (profile.n_train, profile.n_val, profile.n_sft), seed=profile.data_seed, templates=templates)
    gen.write_jsonl(train_problems, out / "data" / "train.jsonl")
    gen.write_jsonl(val_problems, out / "data" / "val.jsonl")
    gen.write_jsonl(sft_problems, out / "data" / "sft.jsonl")
    overrides = path_overrides(out) + list(profile.grpo_overrides)
    config = load_config(CONFIG, overrides)
    train_tasks, val_tasks = load_tasks(config)
    sft_config = load_config(CONFIG, [*overrides, f"astuner.task_reader.dataset_file.training.file_path={out / 'data' / 'sft.jsonl'}"])
    sft_tasks, _ = load_tasks(sft_config)
    timings["data_s"] = time.perf_counter() - t0
    _log(f"{len(sft_tasks)} SFT, {len(train_tasks)} GRPO and {len(val_tasks)} validation problems from {len(templates)} templates")

    t = time.perf_counter()
    boot_tok = AutoTokenizer.from_pretrained(str(build_tiny_model(out / "bootstrap", hidden_size=16, num_layers=1)))
    boot = TeacherEngine(sft_problems, boot_tok, ChatTemplate(boot_tok).turn.end_of_turn_id, profile.rates, seed=profile.teacher_seed + 1)
    traces.collect(sft_config, boot_tok, boot, sft_tasks[: profile.corpus_rollouts], parallel=profile.trace_parallel)
    corpus = list(boot.transcripts.values())
    init_dir = build_tiny_model(
        out / "init", vocab_size=profile.vocab_size, hidden_size=profile.hidden_size,
        num_layers=profile.num_layers, seed=profile.model_seed, corpus=corpus,
    )
    tokenizer = AutoTokenizer.from_pretrained(str(init_dir))
    timings["tokenizer_s"] = time.perf_counter() - t
    _log(f"tokenizer: {len(tokenizer)} tokens, trained on {len(corpus)} teacher transcripts")

    t = time.perf_counter()
    spec = traces.TeacherSpec(tuple(sft_problems), str(init_dir), profile.rates, profile.teacher_seed)
    teacher_results = traces.collect_teacher(sft_config, spec, sft_tasks, num_repeat=profile.trace_repeat,
                                             parallel=profile.trace_parallel,
                                             processes=min(profile.trace_processes, os.cpu_count() or 1))
    samples = [s for r in teacher_results if r.error is None for s in r.samples]
    teacher_stats = traces.describe(teacher_results)
    lengths = [len(s.token_ids) for s in samples]
    timings["traces_s"] = time.perf_counter() - t
    _log(f"teacher traces: {len(samples)} samples, mean {sum(lengths) / max(1, len(lengths)):.0f} tokens; {teacher_stats}")

    t = time.perf_counter()
    dev = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else ("cpu" if device == "auto" else device))
    model = AutoModelForCausalLM.from_pretrained(str(init_dir), dtype=torch.float32).to(dev)
    threads = torch.get_num_threads()
    torch.set_num_threads(profile.threads or threads)
    try:
        sft_stats = sft.train(model, samples, profile.sft, dev)
    finally:
        torch.set_num_threads(threads)
    sft.save(model, tokenizer, out / "sft" / "model")
    del model
    if dev.type == "cuda":
        torch.cuda.empty_cache()
    timings["sft_s"] = time.perf_counter() - t
    for phase in ("short", "full"):
        if phase in sft_stats:
            p = sft_stats[phase]
            cut = " (stopped at max_seconds)" if p["stopped_early"] else ""
            _log(f"SFT {phase}: {p['steps']} steps in {p['seconds']:.0f} s{cut}, loss {p['loss_curve'][0][1]:.3f} -> {p['final_loss']:.3f}")

    t = time.perf_counter()
    if (out / "grpo").exists():
        shutil.rmtree(out / "grpo")
    argv = grpo.command(CONFIG, out, [*overrides, f"astuner.local.device={dev}"])
    budget = None
    if profile.deadline_s:
        budget = profile.deadline_s - (time.perf_counter() - t0) - DEADLINE_RESERVE_S
        if budget < MIN_GRPO_S:
            raise RuntimeError(f"only {budget:.0f} s of the {profile.deadline_s:.0f} s deadline are left for GRPO "
                               f"(timings so far: {timings}); the earlier phases are too slow on this machine")
    _log("GRPO: " + " ".join(argv) + (f" (stopped after {budget:.0f} s if still running)" if budget else ""))
    code, stopped = grpo.run(argv, timeout_s=budget, threads=profile.threads)
    timings["grpo_s"] = time.perf_counter() - t
    if code != 0 and not stopped:
        raise RuntimeError(f"the GRPO run failed with exit code {code}")

    timings["total_s"] = time.perf_counter() - t0
    results = report.build(out / "grpo")
    results.update({
        "profile": profile.name,
        "grpo_stopped_at_deadline": stopped,
        "grpo_command": "python " + " ".join(argv[1:]),
        "settings": {**asdict(profile), "sft": asdict(profile.sft), "rates": asdict(profile.rates)},
        "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "teacher": teacher_stats,
        "sft": sft_stats,
        "sample_tokens_mean": sum(lengths) / max(1, len(lengths)),
        "timings": timings,
    })
    draw_figures(results, out)
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    (out / "results.md").write_text(report.markdown(results), encoding="utf-8")
    _log(f"done in {timings['total_s']:.0f} s; results: {out / 'results.md'}")
    return results
