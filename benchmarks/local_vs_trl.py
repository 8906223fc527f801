"""GRPO step time of astuner's ``local`` backbone vs TRL's ``GRPOTrainer`` (no vLLM), same GPU, same run.

Rows: ``astuner`` (the in-process transformers engine), ``astuner-gc`` (the same with activation
checkpointing), ``astuner-vllm`` (``rollout.engine.type: vllm``: a ``vllm serve`` astuner starts,
bf16, 40% of the card, weights reloaded in place after each update; the engine's default
``enforce_eager: true``, so vLLM decodes without CUDA graphs), ``astuner-vllm-graphs`` (the same with
``enforce_eager: false``) and ``trl``. ``--impls`` picks a subset (the vLLM rows need vLLM installed;
``trl`` needs TRL).

Both train a randomly initialised model of Qwen2.5-0.5B's architecture (bf16) with the real
Qwen2.5 tokenizer on the same 8 prompts × 8 generations × up to 256 new tokens, temperature 1,
lr 1e-6, no KL term, one optimizer step per batch, token-mean loss. A random policy almost never
emits the end-of-turn token, so nearly every completion runs to the 256-token limit in both.
astuner runs its real path (config → single-turn workflow through ``ModelTuner`` → transformers
engine → judge → samples → PPO-clip update); TRL runs ``GRPOTrainer.train``. Each implementation
runs in its own process so peak memory is its own.

Usage (GPU machine; TRL installed):
    python benchmarks/local_vs_trl.py --tokenizer DIR --out results.json [--steps 5]
It prints a markdown table: median step time over the steps after the first (warm-up), rollout
and training tokens/s, peak memory, and the TRL/astuner step-time ratio.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TASKS = REPO / "tutorial" / "example_math_agent" / "data" / "offline_tasks.jsonl"
PROMPTS = 8
GENERATIONS = 8
NEW_TOKENS = int(__import__("os").environ.get("BENCH_NEW_TOKENS", 256))

WORKFLOW = '''
import zlib
from astuner import Workflow, WorkflowOutput
from astuner.task_judge.base_judge import BaseJudge


class SingleTurn(Workflow):
    async def execute(self, workflow_task, model_tuner):
        res = await model_tuner([{"role": "user", "content": workflow_task.task.main_query}])
        text = "".join(b.get("text", "") for b in res.content if b["type"] == "text")
        return WorkflowOutput(metadata={"final_answer": text})


class CoinJudge(BaseJudge):
    def judge(self, judge_input):
        r = float(zlib.crc32(str(judge_input.get("final_answer", "")).encode()) % 2)
        return r, bool(r)
'''


def make_model(out: Path, tokenizer_dir: Path) -> Path:
    """A random-init Qwen2.5-0.5B-architecture model in bf16, with the real tokenizer."""
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    cfg = Qwen2Config(
        vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
        num_attention_heads=14, num_key_value_heads=2, max_position_embeddings=32768,
        rope_theta=1_000_000.0, tie_word_embeddings=True, rms_norm_eps=1e-6,
        bos_token_id=151643, eos_token_id=151645,
    )
    model = Qwen2ForCausalLM(cfg).to(torch.bfloat16)
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(str(tokenizer_dir)).save_pretrained(out)
    return out


def questions() -> list[str]:
    rows = [json.loads(line) for line in TASKS.read_text().splitlines()]
    return [r["question"] for r in rows][:PROMPTS]


def run_astuner_gc(model_dir: Path, steps: int, work: Path) -> dict:
    """astuner with activation checkpointing in the update (trades update time for memory)."""
    return run_astuner(model_dir, steps, work, gradient_checkpointing=True)


def run_astuner_vllm(model_dir: Path, steps: int, work: Path) -> dict:
    """astuner with the vLLM engine: rollouts from a vLLM server, weight sync by in-place reload."""
    return run_astuner(model_dir, steps, work, engine=VLLM_ENGINE)


def run_astuner_vllm_graphs(model_dir: Path, steps: int, work: Path) -> dict:
    """The same with ``enforce_eager: false``: the server captures CUDA graphs for decoding."""
    return run_astuner(model_dir, steps, work, engine=VLLM_GRAPHS_ENGINE)


VLLM_ENGINE = "{type: vllm, vllm: {gpu_memory_utilization: 0.4, dtype: bfloat16, weight_sync: reload}}"
VLLM_GRAPHS_ENGINE = ("{type: vllm, vllm: {gpu_memory_utilization: 0.4, dtype: bfloat16, weight_sync: reload, "
                      "enforce_eager: false}}")
TRANSFORMERS_ENGINE = "{type: transformers, transformers: {max_batch_size: 64}}"


def run_astuner(model_dir: Path, steps: int, work: Path, gradient_checkpointing: bool = False,
                engine: str = TRANSFORMERS_ENGINE) -> dict:
    from astuner.cli import main

    (work / "bench_workflow.py").write_text(WORKFLOW)
    conf = work / "bench.yaml"
    conf.write_text(f"""\
astuner:
  experiment_name: bench_astuner
  task_reader:
    type: dataset_file
    shuffle: false
    dataset_file:
      training: {{file_path: {TASKS}}}
  rollout:
    agentscope_workflow: {work}/bench_workflow.py->SingleTurn
    num_repeat: {GENERATIONS}
    temperature: 1.0
    compute_madness_checklist: []
    max_response_length_in_one_turn: {NEW_TOKENS}
    max_model_len: 1024
    max_env_worker: 64
    engine: {engine}
  data: {{train_batch_size: {PROMPTS}, max_prompt_length: 512, max_response_length: {NEW_TOKENS}}}
  task_judge: {{judge_protocol: {work}/bench_workflow.py->CoinJudge}}
  model: {{path: {model_dir}}}
  trainer_common: {{save_freq: 100000, test_freq: 100000, total_epochs: 100, use_kl_loss: false, optim: {{lr: 1.0e-6}}}}
  local: {{max_steps: {steps}, micro_batch_tokens: 65536, save_rollouts: false, resume_mode: disable,
          gradient_checkpointing: {str(gradient_checkpointing).lower()}}}
""")
    code = main(["--conf", str(conf), "--backbone=local", "--exp-dir", str(work / "exp")])
    if code != 0:
        raise SystemExit(f"astuner run failed with exit code {code}")
    rows = [json.loads(line) for line in (work / "exp" / "bench_astuner" / "metrics.jsonl").read_text().splitlines()]
    return {
        "step_time_s": [r["step_time_s"] for r in rows],
        "rollout_time_s": [r["rollout_time_s"] for r in rows],
        "train_time_s": [r["train_time_s"] for r in rows],
        "generated_tokens": [r["response_length_mean"] * PROMPTS * GENERATIONS for r in rows],
        "train_tokens": [r["train_tokens_per_s"] * r["train_time_s"] for r in rows],
        "peak_memory_gb": max(r.get("peak_memory_gb", 0.0) for r in rows),
        "weight_sync_s": [r["weight_sync_s"] for r in rows if "weight_sync_s" in r],
    }


def run_trl(model_dir: Path, steps: int, work: Path) -> dict:
    import torch
    import transformers
    from datasets import Dataset
    from transformers import AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    gen_time = [0.0]
    original = transformers.GenerationMixin.generate

    def timed_generate(self, *args, **kwargs):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = original(self, *args, **kwargs)
        torch.cuda.synchronize()
        gen_time[0] += time.perf_counter() - t0
        return out

    transformers.GenerationMixin.generate = timed_generate
    steps_log: list[dict] = []

    class Timer(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            torch.cuda.synchronize()
            self.t0, gen_time[0] = time.perf_counter(), 0.0

        def on_step_end(self, args, state, control, **kw):
            torch.cuda.synchronize()
            steps_log.append({"step": time.perf_counter() - self.t0, "gen": gen_time[0]})

    data = Dataset.from_list([{"prompt": [{"role": "user", "content": q}]} for q in questions()] * (steps + 1))

    def coin(completions, **kw):
        import zlib

        return [float(zlib.crc32(str(c).encode()) % 2) for c in completions]

    args = GRPOConfig(
        output_dir=str(work / "trl"), per_device_train_batch_size=PROMPTS * GENERATIONS, gradient_accumulation_steps=1,
        num_generations=GENERATIONS, max_completion_length=NEW_TOKENS, temperature=1.0, learning_rate=1e-6, beta=0.0,
        bf16=True, max_steps=steps, logging_steps=1, report_to="none", save_strategy="no", shuffle_dataset=False,
        use_vllm=False,
    )
    tok = AutoTokenizer.from_pretrained(str(model_dir))
    trainer = GRPOTrainer(model=str(model_dir), reward_funcs=coin, args=args, train_dataset=data,
                          processing_class=tok, callbacks=[Timer()])
    torch.cuda.reset_peak_memory_stats()
    trainer.train()
    lengths = [h.get("completions/mean_length", NEW_TOKENS) for h in trainer.state.log_history if "loss" in h]
    return {
        "step_time_s": [s["step"] for s in steps_log],
        "rollout_time_s": [s["gen"] for s in steps_log],
        "train_time_s": [s["step"] - s["gen"] for s in steps_log],
        "generated_tokens": [m * PROMPTS * GENERATIONS for m in lengths][: len(steps_log)],
        "peak_memory_gb": torch.cuda.max_memory_allocated() / 2**30,
        "gradient_checkpointing": bool(args.gradient_checkpointing),
        "trl_loss_type": args.loss_type,
    }


RUNNERS = {"astuner": run_astuner, "astuner-gc": run_astuner_gc, "astuner-vllm": run_astuner_vllm,
           "astuner-vllm-graphs": run_astuner_vllm_graphs, "trl": run_trl}


def med(xs: list[float]) -> float:
    xs = xs[1:] if len(xs) > 1 else xs
    return statistics.median(xs)


def table(res: dict) -> str:
    lines = [
        "| implementation | step time p50 (s) | rollout time p50 (s) | update time p50 (s) | rollout tok/s "
        "| training tok/s | peak memory (GiB) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    seq_tokens = med(res["astuner"]["train_tokens"]) if "astuner" in res else float("nan")
    for name, r in res.items():
        tok_s = med([g / t for g, t in zip(r["generated_tokens"], r["rollout_time_s"]) if t])
        lines.append(
            f"| {name} | {med(r['step_time_s']):.2f} | {med(r['rollout_time_s']):.2f} | {med(r['train_time_s']):.2f} "
            f"| {tok_s:.0f} | {seq_tokens / med(r['train_time_s']):.0f} | {r['peak_memory_gb']:.1f} |"
        )
    lines.append("")
    lines.append("training tok/s = prompt + completion tokens of the step's 64 sequences (the same in every row) / update time.")
    for name in ("astuner", "astuner-vllm", "astuner-vllm-graphs"):
        if {name, "trl"} <= set(res):
            ratio = med(res["trl"]["step_time_s"]) / med(res[name]["step_time_s"])
            lines.append("")
            lines.append(f"TRL / {name} step time (median): {ratio:.2f}x")
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tokenizer", required=True, help="a Qwen2.5 tokenizer directory")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--out", default="")
    p.add_argument("--impls", default="astuner,astuner-gc,astuner-vllm,astuner-vllm-graphs,trl",
                   help="comma-separated rows to run, of " + ", ".join(RUNNERS))
    p.add_argument("--only", choices=sorted(RUNNERS), default=None, help=argparse.SUPPRESS)
    p.add_argument("--model-dir", default="", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.only:
        work = Path(tempfile.mkdtemp(prefix=f"bench_{args.only}_"))
        fn = RUNNERS[args.only]
        print("RESULT " + json.dumps(fn(Path(args.model_dir), args.steps, work)))
        return 0
    impls = [name.strip() for name in args.impls.split(",") if name.strip()]
    unknown = sorted(set(impls) - set(RUNNERS))
    if unknown:
        p.error(f"--impls: unknown {unknown}; choose from {sorted(RUNNERS)}")
    model_dir = make_model(Path(tempfile.mkdtemp(prefix="qwen25_05b_random_")), Path(args.tokenizer))
    results = {}
    for impl in impls:
        out = subprocess.run(
            [sys.executable, __file__, "--tokenizer", args.tokenizer, "--steps", str(args.steps), "--only", impl,
             "--model-dir", str(model_dir)], capture_output=True, text=True,
        )
        line = [x for x in out.stdout.splitlines() if x.startswith("RESULT ")]
        if out.returncode or not line:
            print(out.stdout[-4000:], out.stderr[-4000:], file=sys.stderr)
            raise SystemExit(f"{impl} failed")
        results[impl] = json.loads(line[-1][7:])
    print(table(results))
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
