"""The experiment's sizes: ``gpu`` (the full run, one 10-minute device call) and ``cpu`` (the CI miniature).

Why two profiles of one pipeline: CI must show on 2 CPU cores, in minutes, that the same code
path (generated data → teacher traces → SFT → ``--backbone=local`` GRPO → evaluation) moves the
metrics the right way; the GPU run measures it against the seed's targets at the largest size
that fits one 10-minute device call. Everything is seeded. In the cpu profile SFT runs in float32
on one thread (deterministic kernels, fixed batches: it reproduces exactly), and GRPO in float64
(``local.dtype``), where a decoded row's logits differ between batch compositions only at ~1e-16,
far below what could flip a sampled token, so which rollouts happen to share a decoding batch no
longer matters. Not guaranteed: identical GRPO reruns (they still drift apart slightly, cause not
yet found; docs/benchmarks.md). The gpu profile is not reproducible either: in bf16 batched decoding depends on which rollouts share a batch, and GPU kernels
are not deterministic.

``grpo_overrides`` are ``KEY=VALUE`` overrides on ``tutorial/example_math_agent/tool_discipline.yaml``
(the pipeline adds the paths); the yaml's own values are the gpu profile's GRPO settings.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from experiments.tool_discipline.sft import SFTSettings
from experiments.tool_discipline.teacher import TeacherRates


@dataclass(frozen=True)
class Profile:
    name: str
    templates: int
    """How many of ``problems.TEMPLATES`` (from the first) the problems are drawn from."""
    n_train: int
    """GRPO's training problems."""
    n_val: int
    """Validation problems."""
    n_sft: int
    """The teacher's problems (SFT data), disjoint from the other two sets."""
    vocab_size: int
    hidden_size: int
    num_layers: int
    corpus_rollouts: int
    """Teacher transcripts the tokenizer is trained on."""
    trace_repeat: int
    """Teacher rollouts per SFT problem."""
    sft: SFTSettings
    rates: TeacherRates = field(default_factory=TeacherRates)
    grpo_overrides: tuple[str, ...] = ()
    data_seed: int = 0
    model_seed: int = 0
    teacher_seed: int = 0
    trace_parallel: int = 64
    """Teacher rollouts in flight at once (over all processes)."""
    trace_processes: int = 1
    """Processes the SFT teacher traces are collected in (``traces.collect_teacher``); at most the CPU count."""
    deadline_s: float = 0.0
    """Wall-clock budget of the whole run; GRPO is stopped where it would overrun (0 = none)."""
    threads: int = 0
    """Torch CPU threads for SFT and the GRPO child (0 = torch's default). The cpu profile uses 1:
    measured on the 2-vCPU VM with the other core busy, a 2-thread SFT step took 2.65x its idle time
    (OpenMP threads wait on the busy core), a 1-thread step 1.18x; one thread also keeps results
    independent of the core count."""


PROFILES = {
    "gpu": Profile(
        name="gpu",
        templates=24,
        n_train=1500,
        n_val=200,
        n_sft=32000,
        vocab_size=4096,
        hidden_size=256,
        num_layers=4,
        corpus_rollouts=400,
        trace_repeat=1,
        sft=SFTSettings(short_steps=3000, steps=800, batch_size=128, lr=2e-3, max_seconds=150),
        grpo_overrides=("astuner.python_tool.pool_size=16",),
        trace_parallel=128,
        trace_processes=12,
        deadline_s=560,
    ),
    "cpu": Profile(
        name="cpu",
        templates=6,
        n_train=400,
        n_val=40,
        n_sft=1600,
        vocab_size=1024,
        hidden_size=64,
        num_layers=3,
        corpus_rollouts=120,
        trace_repeat=1,
        sft=SFTSettings(short_steps=1200, steps=300, batch_size=16, lr=5e-3),
        grpo_overrides=(
            "astuner.local.max_steps=30",
            "astuner.trainer_common.test_freq=30",
            "astuner.data.train_batch_size=8",
            "astuner.rollout.num_repeat=8",
            "astuner.trainer_common.optim.lr=3.0e-4",
            "astuner.local.val_max_tasks=40",
            "astuner.rollout.val_kwargs.num_repeat=4",
            "astuner.rollout.max_env_worker=64",
            "astuner.rollout.engine.transformers.max_batch_size=64",
            "astuner.local.dtype=float64",
        ),
        threads=1,
    ),
}
