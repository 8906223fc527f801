"""The ``local`` backbone: GRPO training in one process on one GPU (or CPU).

Each step takes ``data.train_batch_size`` tasks, rolls each out ``rollout.num_repeat`` times with
the in-process transformers engine (concurrent rollouts share batched forward passes), judges
them, builds token-exact samples, computes GRPO advantages per rollout (``astuner.algorithm``)
and updates the policy with the PPO-clip loss. The engine generates from the very model object
being trained, so the next step's rollouts use the updated policy. With ``rollout.engine.type:
vllm`` a ``vllm serve`` generates instead: it sleeps during each update (freeing its GPU memory)
and then reloads the updated weights, saved under ``vllm_weights/``, in place (or is restarted on
them: ``engine.vllm.weight_sync``; docs/engines.md). The loop never asks which engine it has: it
calls the engine's ``PolicyEngine`` hooks (``updating()`` around each update, ``publish`` after it).

Every ``trainer_common.save_freq`` steps a checkpoint (weights, optimizer, data cursor, RNG) is
written atomically; rerunning the same command resumes from the newest one (``local.resume_mode``).
A run killed mid-step loses the steps since that checkpoint and nothing else: ``metrics.jsonl``
lines of lost steps are dropped on resume. Validation runs every ``trainer_common.test_freq``
steps on the validation split with ``rollout.val_kwargs`` sampling.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from tqdm import tqdm

from astuner.algorithm import PolicyLossConfig, assign_advantages
from astuner.artifacts import write_rollouts
from astuner.interrupt import sigterm_raises
from astuner.backbone import checkpoint as ckpt
from astuner.backbone.policy_trainer import PolicyTrainer, TrainSettings
from astuner.backbone.runtime import SetupError, build_runtime, model_path
from astuner.engine.base import PolicyEngine
from astuner.metrics import MetricsLogger
from astuner.rollout import RolloutResult, summarize
from astuner.rollout_service import roll_out
from astuner.schema import Task
from astuner.task_reader import build_task_reader
from astuner.tracking.names import TrackerUnavailable, check_trackers
from astuner.tracking.table import completion_rows

if TYPE_CHECKING:
    import argparse

    from astuner.config.schema import Config


def run(config: Config, exp_dir: Path, args: argparse.Namespace | None = None) -> int:
    """CLI entry (``astuner.backbone.load_backbone("local")``); ``args`` (the command line) is not read."""
    a = config.astuner
    if a.rollout.engine.type not in ("transformers", "vllm"):
        raise SetupError(
            "astuner.rollout.engine.type: the local backbone rolls out with the model it trains; "
            f"use 'transformers' or 'vllm' (got {a.rollout.engine.type!r})"
        )
    if a.rollout.engine.type == "vllm" and a.local.lora_rank > 0:
        raise SetupError(
            "astuner.rollout.engine.type: 'vllm' with local.lora_rank > 0 is not supported "
            "(the server is given full saved weights after each update); use 'transformers' for LoRA"
        )
    try:
        check_trackers(a.trainer_common.logger)
    except TrackerUnavailable as exc:
        raise SetupError(str(exc)) from None
    # SIGTERM raises Terminated (a SystemExit), so the loop's cleanup runs (metrics closed, sandboxes
    # and a vLLM server stopped) and the CLI exits 143; finished steps are already on disk.
    with sigterm_raises():
        return LocalTrainer(config, exp_dir).train()


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _dtype(name: str, device: torch.device) -> torch.dtype:
    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return {"float64": torch.float64, "float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


class LocalTrainer:
    """The training loop; one instance per run."""

    def __init__(self, config: Config, exp_dir: Path) -> None:
        self.config = config
        self.exp_dir = exp_dir
        a = config.astuner
        self.device = _device(a.local.device)
        reader = build_task_reader(a.task_reader, seed=a.seed, shuffle=a.task_reader.shuffle)
        self.train_tasks = reader.get_training_tasks()
        val = reader.get_validation_tasks()
        self.val_tasks = val[: a.local.val_max_tasks] if a.local.val_max_tasks else val
        if not self.train_tasks:
            raise SetupError("astuner.task_reader: no training tasks")
        self.batch_size = min(a.data.train_batch_size, len(self.train_tasks))
        self.steps_per_epoch = len(self.train_tasks) // self.batch_size
        total = a.trainer_common.total_epochs * self.steps_per_epoch
        self.total_steps = min(total, a.local.max_steps) if a.local.max_steps else total
        self.resume_from = ckpt.latest_checkpoint(exp_dir) if a.local.resume_mode == "auto" else None
        self._load_model()

    def _load_model(self) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        a = self.config.astuner
        base = model_path(a.model.path)
        dtype = _dtype(a.local.dtype, self.device)
        lora = a.local.lora_rank > 0
        source = self.resume_from / "model" if self.resume_from and not lora else Path(base)
        self.weights_dir = source
        self.tokenizer = AutoTokenizer.from_pretrained(str(source))
        model = AutoModelForCausalLM.from_pretrained(str(source), dtype=dtype).to(self.device)
        self.ref_model = None
        if lora:
            model = self._with_lora(model)
        elif a.trainer_common.use_kl_loss and a.trainer_common.kl_loss_coef > 0:
            ref_source = Path(base)
            self.ref_model = AutoModelForCausalLM.from_pretrained(str(ref_source), dtype=dtype).to(self.device).eval()
            self.ref_model.requires_grad_(False)
        if a.local.gradient_checkpointing:
            model.gradient_checkpointing_enable()
        self.model = model
        self.model_path = base

    def _with_lora(self, model: Any) -> Any:
        try:
            from peft import LoraConfig, PeftModel, get_peft_model
        except ImportError as exc:
            raise SetupError("astuner.local.lora_rank: LoRA needs peft (pip install -e '.[lora]')") from exc
        loc = self.config.astuner.local
        if self.resume_from:
            return PeftModel.from_pretrained(model, str(self.resume_from / "model"), is_trainable=True)
        cfg = LoraConfig(r=loc.lora_rank, lora_alpha=loc.lora_alpha, target_modules=list(loc.lora_target_modules), task_type="CAUSAL_LM")
        return get_peft_model(model, cfg)

    def _settings(self) -> TrainSettings:
        a = self.config.astuner
        loc, tc = a.local, a.trainer_common
        return TrainSettings(
            lr=tc.optim.lr,
            grad_clip=loc.grad_clip,
            temperature=a.rollout.temperature,
            loss=PolicyLossConfig(loc.clip_range, loc.clip_range, loc.clip_ratio_c, loc.loss_agg_mode),
            use_kl_loss=tc.use_kl_loss,
            kl_loss_coef=tc.kl_loss_coef,
            kl_loss_type=tc.kl_loss_type,
            mini_batch_num=tc.mini_batch_num,
            micro_batch_tokens=loc.micro_batch_tokens,
            weight_decay=loc.weight_decay,
        )

    def train(self) -> int:
        from astuner.engine.transformers_engine import TransformersEngine

        a = self.config.astuner
        if a.rollout.engine.type == "vllm":
            engine = self._vllm_engine()
        else:
            engine = TransformersEngine(
                self.model_path, model=self.model, tokenizer=self.tokenizer,
                max_batch_size=a.rollout.engine.transformers.max_batch_size, seed=a.seed,
                cuda_graphs=a.rollout.engine.transformers.cuda_graphs,
            )
        try:
            runtime = build_runtime(self.config, tokenizer=self.tokenizer, engine=engine)
        except BaseException:
            engine.close()
            raise
        trainer = PolicyTrainer(self.model, self._settings(), self.device, self.ref_model)
        step, cursor = 0, {"epoch": 0, "index": 0}
        if self.resume_from:
            state = ckpt.load_trainer_state(self.resume_from, trainer.optimizer)
            step, cursor = state["step"], state["cursor"]
            print(f"astuner: resuming {self.exp_dir.name} from step {step} ({self.resume_from})")
        _drop_metrics_after(self.exp_dir / "metrics.jsonl", step)
        resume_step = step if self.resume_from else None
        try:
            self.metrics = metrics = MetricsLogger.from_config(self.config, self.exp_dir, resume_step=resume_step)
        except BaseException:
            runtime.close()  # a tracker that fails to start must not leave the engine and sandbox pool running
            raise
        quiet = bool(os.environ.get("CI")) or not sys.stderr.isatty()
        bar = tqdm(total=self.total_steps, initial=step, desc="steps", unit="step", disable=quiet)
        try:
            if step == 0 and a.trainer_common.val_before_train and self.val_tasks:
                metrics.log(0, self._validate(runtime, 0))
            while step < self.total_steps:
                step += 1
                tasks, cursor = self._next_batch(cursor)
                row = self._train_step(runtime, trainer, tasks, step)
                if step % a.trainer_common.test_freq == 0 or step == self.total_steps:
                    if self.val_tasks:
                        row.update(self._validate(runtime, step))
                metrics.log(step, row)
                if step % a.trainer_common.save_freq == 0 or step == self.total_steps:
                    ckpt.save_checkpoint(
                        self.exp_dir, step, self.model, self.tokenizer, trainer.optimizer,
                        {"cursor": cursor}, keep=a.local.keep_checkpoints,
                    )
                bar.update(1)
                bar.set_postfix(reward=f"{row['reward_mean']:.3f}", success=f"{row['success_rate']:.2f}")
        finally:
            bar.close()
            metrics.close()
            runtime.close()
        (self.exp_dir / "DONE").write_text(f"{step}\n")
        print(f"astuner: trained {step} steps; metrics: {self.exp_dir / 'metrics.jsonl'}")
        return 0

    def _vllm_engine(self) -> Any:
        """A ``vllm serve`` on the weights the policy starts from (the base model or the resumed checkpoint)."""
        from astuner.engine.base import EngineError
        from astuner.engine.vllm_engine import build_vllm_engine

        a = self.config.astuner
        try:
            return build_vllm_engine(
                a.rollout.engine.vllm, str(self.weights_dir), seed=a.seed, log_dir=self.exp_dir,
                max_model_len=a.rollout.max_model_len,
            )
        except EngineError as exc:
            raise SetupError(f"astuner.rollout.engine: {exc}") from exc

    def _update(self, engine: PolicyEngine, trainer: PolicyTrainer, samples: list) -> dict[str, float]:
        """One policy update inside the engine's ``updating()`` (a vLLM server sleeps or stops during it,
        so the trainer has the GPU's memory; the in-process engine holds its decode lock)."""
        with engine.updating():
            return trainer.update(samples)

    def _publish(self, engine: PolicyEngine, step: int) -> float | None:
        """Give the engine the updated weights, unless nothing will generate again; the seconds it took,
        or None when nothing was sent (the in-process engine already decodes with the trained model)."""
        if step < self.total_steps or self.val_tasks:
            return engine.publish(self.model, self.tokenizer, f"step_{step:06d}")
        return None

    def _next_batch(self, cursor: dict) -> tuple[list[Task], dict]:
        epoch, index = cursor["epoch"], cursor["index"]
        if index + self.batch_size > len(self.train_tasks):
            epoch, index = epoch + 1, 0
        order = list(self.train_tasks)
        if epoch:
            random.Random(self.config.astuner.seed * 1_000_003 + epoch).shuffle(order)
        return order[index : index + self.batch_size], {"epoch": epoch, "index": index + self.batch_size}

    def _train_step(self, runtime: Any, trainer: PolicyTrainer, tasks: list[Task], step: int) -> dict[str, float]:
        a = self.config.astuner
        started = time.perf_counter()
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        rollouts = runtime.rollouts.variant(seed_salt=step)
        results = asyncio.run(roll_out(rollouts, tasks, a.rollout.num_repeat, a.rollout.max_env_worker))
        rollout_s = time.perf_counter() - started
        samples = [s for r in results if r.error is None for s in r.samples]
        assign_advantages(samples)
        t0 = time.perf_counter()
        train_metrics = self._update(runtime.engine, trainer, samples)
        train_s = time.perf_counter() - t0
        sync_s = self._publish(runtime.engine, step)
        if a.local.save_rollouts:
            write_rollouts(self.exp_dir / "rollouts" / f"step_{step:06d}.jsonl", results, self.tokenizer)
        row = _rollout_metrics(results)
        row.update(train_metrics)
        generated = sum(r.stats.generated_tokens for r in results)
        row.update({
            "step_time_s": time.perf_counter() - started,
            "rollout_time_s": rollout_s,
            "train_time_s": train_s,
            "rollout_tokens_per_s": generated / rollout_s if rollout_s else 0.0,
            "train_tokens_per_s": sum(len(s.token_ids) for s in samples) / train_s if train_s else 0.0,
            "lr": trainer.optimizer.param_groups[0]["lr"],
        })
        if sync_s is not None:
            row["weight_sync_s"] = sync_s
        if self.device.type == "cuda":
            row["peak_memory_gb"] = torch.cuda.max_memory_allocated(self.device) / 2**30
        return row

    def _validate(self, runtime: Any, step: int) -> dict[str, float]:
        vk = self.config.astuner.rollout.val_kwargs
        val = runtime.rollouts.variant(seed_salt=-step - 1, temperature=vk.temperature, top_p=vk.top_p)
        results = asyncio.run(roll_out(val, self.val_tasks, vk.num_repeat, self.config.astuner.rollout.max_env_worker))
        write_rollouts(self.exp_dir / "rollouts" / f"val_step_{step:06d}.jsonl", results, self.tokenizer)
        self.metrics.log_table(step, completion_rows(results))
        return {f"val/{k}": v for k, v in _rollout_metrics(results).items()}


def _drop_metrics_after(path: Path, step: int) -> None:
    """On resume, forget the metrics of steps that were lost with the killed process."""
    if not path.exists():
        return
    keep = [line for line in path.read_text().splitlines() if line.strip() and json.loads(line).get("step", 0) <= step]
    path.write_text("".join(line + "\n" for line in keep))


def _rollout_metrics(results: list[RolloutResult]) -> dict[str, float]:
    """Per-step rollout metrics: ``success_rate`` over all rollouts (a failed one is a failure), the
    other rates and means over finished rollouts; documented in docs/metrics.md."""
    s = summarize(results)
    ok = [r for r in results if r.error is None]
    n = max(1, len(ok))
    rewards = torch.tensor([r.reward for r in ok] or [0.0])
    row = {
        "reward_mean": s["reward_mean"],
        "reward_std": float(rewards.std()) if len(ok) > 1 else 0.0,
        "success_rate": s["success_rate"],
        "failed_rollouts": float(s["failed_rollouts"]),
        "tool_calls_per_rollout": s["tool_calls_per_rollout"],
        "llm_calls_per_rollout": s["llm_calls_per_rollout"],
        "response_length_mean": s["generated_tokens"] / n,
        "samples": float(s["samples"]),
        "timeline_breaks": float(s["timeline_breaks"]),
        "context_overflow_rate": s["context_overflow"] / n,
        "truncated_samples": float(s["truncated_samples"]),
    }
    for key, value in s.items():
        if key.startswith(("bad_case/", "madness/")):
            row[key] = value / n
        elif key.startswith("reward_term/"):  # already a mean over finished rollouts
            row[key] = value
    return row
