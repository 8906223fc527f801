"""The experiment's sizes: ``gpu`` (the full run, one 10-minute device call) and ``cpu`` (the CI miniature).

Why two profiles of one pipeline: CI must show on 2 CPU cores, in minutes, that the same code
path (generated data → teacher traces → SFT → ``--backbone=local`` GRPO → evaluation) moves the
metrics the right way; the GPU run shows it at a size where the seed's targets can be met.
Everything is seeded, so a profile reruns identically on the same machine and software.

``grpo_overrides`` are ``KEY=VALUE`` overrides on ``tutorial/example_math_agent/tool_discipline.yaml``
(the pipeline adds the paths).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from astuner.experiments.tool_discipline.sft import SFTSettings
from astuner.experiments.tool_discipline.teacher import TeacherRates


@dataclass(frozen=True)
class Profile:
    name: str
    templates: int
    """How many of ``problems.TEMPLATES`` (from the first) the problems are drawn from."""
    n_train: int
    n_val: int
    vocab_size: int
    hidden_size: int
    num_layers: int
    corpus_rollouts: int
    """Teacher transcripts the tokenizer is trained on."""
    trace_repeat: int
    """Teacher rollouts per training problem for SFT."""
    sft: SFTSettings
    rates: TeacherRates = field(default_factory=TeacherRates)
    grpo_overrides: tuple[str, ...] = ()
    data_seed: int = 0
    model_seed: int = 0
    teacher_seed: int = 0
    trace_parallel: int = 64


PROFILES = {
    "gpu": Profile(
        name="gpu",
        templates=24,
        n_train=3000,
        n_val=200,
        vocab_size=4096,
        hidden_size=256,
        num_layers=4,
        corpus_rollouts=400,
        trace_repeat=1,
        sft=SFTSettings(steps=1500, batch_size=64, lr=1e-3, max_seconds=150),
        grpo_overrides=(
            "astuner.local.max_steps=40",
            "astuner.data.train_batch_size=32",
            "astuner.rollout.num_repeat=8",
            "astuner.trainer_common.optim.lr=5.0e-5",
            "astuner.local.val_max_tasks=200",
            "astuner.rollout.val_kwargs.num_repeat=2",
        ),
        trace_parallel=128,
    ),
    "cpu": Profile(
        name="cpu",
        templates=6,
        n_train=400,
        n_val=40,
        vocab_size=1024,
        hidden_size=64,
        num_layers=2,
        corpus_rollouts=120,
        trace_repeat=1,
        sft=SFTSettings(steps=300, batch_size=16, lr=3e-3),
        grpo_overrides=(
            "astuner.local.max_steps=12",
            "astuner.data.train_batch_size=8",
            "astuner.rollout.num_repeat=6",
            "astuner.trainer_common.optim.lr=1.0e-4",
            "astuner.local.val_max_tasks=40",
            "astuner.rollout.val_kwargs.num_repeat=2",
            "astuner.rollout.max_env_worker=48",
            "astuner.rollout.engine.transformers.max_batch_size=48",
        ),
    ),
}
