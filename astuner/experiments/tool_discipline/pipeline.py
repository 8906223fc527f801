"""The whole experiment, phase by phase, into one output directory.

1. ``data/``: generated GSM8K-format problems, ``train.jsonl`` and ``val.jsonl`` (disjoint).
2. ``init/``: a tokenizer trained on teacher transcripts (Qwen-style special tokens and tools
   template, via ``build_tiny_model(..., corpus=...)``) and a random Qwen2 model. The transcripts
   come from a first teacher pass rendered with astuner's built-in tiny tokenizer (``bootstrap/``):
   the prompt text does not depend on the tokenizer, so this is the text the policy will read.
3. Teacher traces: every training problem through the unchanged ``ExampleMathLearn`` workflow
   with the teacher as engine; their samples (with loss masks) are the SFT data.
4. ``sft/model``: the cold-start policy after supervised fine-tuning.
5. ``grpo/``: ``astuner --conf tutorial/example_math_agent/tool_discipline.yaml --backbone=local``
   from ``sft/model``, validating before the first step and after the last.
6. ``results.json`` / ``results.md``: before/after table, targets, teacher statistics, example
   cases and the token view (``report.py``).

Reading tasks goes through the normal ``dataset_file`` reader, exactly as GRPO reads them.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from astuner.experiments.tool_discipline import problems as gen
from astuner.experiments.tool_discipline import report, sft, traces
from astuner.experiments.tool_discipline.profiles import Profile
from astuner.experiments.tool_discipline.teacher import TeacherEngine

REPO = Path(__file__).resolve().parents[3]
CONFIG = REPO / "tutorial" / "example_math_agent" / "tool_discipline.yaml"


def path_overrides(out: Path) -> list[str]:
    """Overrides that point the tutorial config at this run's files."""
    data = out / "data"
    return [
        f"astuner.task_reader.dataset_file.training.file_path={data / 'train.jsonl'}",
        f"astuner.task_reader.dataset_file.validation.file_path={data / 'val.jsonl'}",
        f"astuner.model.path={out / 'sft' / 'model'}",
        "astuner.local.resume_mode=disable",
    ]


def load_tasks(config: Any) -> tuple[list, list]:
    """Training and validation tasks through the configured (``dataset_file``) reader, file order."""
    from astuner.task_reader import build_task_reader

    reader = build_task_reader(config.astuner.task_reader, seed=config.astuner.seed, shuffle=False)
    return reader.get_training_tasks(), reader.get_validation_tasks()


def _log(message: str) -> None:
    print(f"tool_discipline: {message}", flush=True)


def run(profile: Profile, out: str | Path, *, device: str = "auto") -> dict[str, Any]:
    """Run every phase of ``profile`` into ``out``; returns the results (also in ``results.json``)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from astuner.chat_template import ChatTemplate
    from astuner.cli import main as astuner_main
    from astuner.config import load_config
    from astuner.tiny_model import build_tiny_model

    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()

    templates = gen.TEMPLATES[: profile.templates]
    train_problems, val_problems = gen.generate_splits(profile.n_train, profile.n_val, seed=profile.data_seed, templates=templates)
    gen.write_jsonl(train_problems, out / "data" / "train.jsonl")
    gen.write_jsonl(val_problems, out / "data" / "val.jsonl")
    overrides = path_overrides(out) + list(profile.grpo_overrides)
    config = load_config(CONFIG, overrides)
    train_tasks, val_tasks = load_tasks(config)
    timings["data_s"] = time.perf_counter() - t0
    _log(f"{len(train_tasks)} training and {len(val_tasks)} validation problems from {len(templates)} templates")

    t = time.perf_counter()
    boot_tok = AutoTokenizer.from_pretrained(str(build_tiny_model(out / "bootstrap", hidden_size=16, num_layers=1)))
    boot = TeacherEngine(train_problems, boot_tok, ChatTemplate(boot_tok).turn.end_of_turn_id, profile.rates, seed=profile.teacher_seed + 1)
    traces.collect(config, boot_tok, boot, train_tasks[: profile.corpus_rollouts], parallel=profile.trace_parallel)
    corpus = list(boot.transcripts.values())
    init_dir = build_tiny_model(
        out / "init", vocab_size=profile.vocab_size, hidden_size=profile.hidden_size,
        num_layers=profile.num_layers, seed=profile.model_seed, corpus=corpus,
    )
    tokenizer = AutoTokenizer.from_pretrained(str(init_dir))
    timings["tokenizer_s"] = time.perf_counter() - t
    _log(f"tokenizer: {len(tokenizer)} tokens, trained on {len(corpus)} teacher transcripts")

    t = time.perf_counter()
    teacher = TeacherEngine(train_problems, tokenizer, ChatTemplate(tokenizer).turn.end_of_turn_id, profile.rates, seed=profile.teacher_seed)
    teacher_results = traces.collect(config, tokenizer, teacher, train_tasks, num_repeat=profile.trace_repeat, parallel=profile.trace_parallel)
    samples = [s for r in teacher_results if r.error is None for s in r.samples]
    teacher_stats = traces.describe(teacher_results)
    lengths = [len(s.token_ids) for s in samples]
    timings["traces_s"] = time.perf_counter() - t
    _log(f"teacher traces: {len(samples)} samples, mean {sum(lengths) / max(1, len(lengths)):.0f} tokens; {teacher_stats}")

    t = time.perf_counter()
    dev = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else ("cpu" if device == "auto" else device))
    model = AutoModelForCausalLM.from_pretrained(str(init_dir), dtype=torch.float32).to(dev)
    sft_stats = sft.train(model, samples, profile.sft, dev)
    sft.save(model, tokenizer, out / "sft" / "model")
    del model
    if dev.type == "cuda":
        torch.cuda.empty_cache()
    timings["sft_s"] = time.perf_counter() - t
    for phase in ("short", "full"):
        if phase in sft_stats:
            p = sft_stats[phase]
            _log(f"SFT {phase}: {p['steps']} steps in {p['seconds']:.0f} s, loss {p['loss_curve'][0][1]:.3f} -> {p['final_loss']:.3f}")

    t = time.perf_counter()
    shutil.rmtree(out / "grpo", ignore_errors=True)
    argv = ["--conf", str(CONFIG), "--backbone=local", "--exp-dir", str(out), *overrides, f"astuner.local.device={dev.type}"]
    _log("GRPO: astuner " + " ".join(argv))
    code = astuner_main(argv)
    timings["grpo_s"] = time.perf_counter() - t
    if code != 0:
        raise RuntimeError(f"the GRPO run failed with exit code {code}")

    timings["total_s"] = time.perf_counter() - t0
    results = report.build(out / "grpo")
    results.update({
        "profile": profile.name,
        "settings": {**asdict(profile), "sft": asdict(profile.sft), "rates": asdict(profile.rates)},
        "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "teacher": teacher_stats,
        "sft": sft_stats,
        "sample_tokens_mean": sum(lengths) / max(1, len(lengths)),
        "timings": timings,
    })
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    (out / "results.md").write_text(report.markdown(results), encoding="utf-8")
    _log(f"done in {timings['total_s']:.0f} s; results: {out / 'results.md'}")
    return results
