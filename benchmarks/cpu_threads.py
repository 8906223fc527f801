"""Torch CPU threads on a shared machine: the CI miniature's model at 1 and 2 threads, idle and busy.

Why: CI runs on 2 cores that may be busy with other work. With 2 torch (OpenMP) threads and one
core taken by another process, each parallel region waits for the thread that is not running; one
thread has nothing to wait for. This measures the miniature's model (64 wide, 3 layers, vocab 1024)
doing what the miniature does: an SFT train step (16 x 480 tokens, forward + backward) and a
decode forward (64 rows x 1 token), in float32 and float64.

    python benchmarks/cpu_threads.py            # markdown table on stdout (~2 minutes)
    python benchmarks/cpu_threads.py --repeats 3

"busy" starts one spinning Python process for the duration of the measurement. Medians of
``--repeats`` timings of ``--inner`` iterations each; nothing is written.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import time

import torch


def _spin() -> None:
    while True:
        pass


def _model(dtype: torch.dtype):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    cfg = Qwen2Config(vocab_size=1024, hidden_size=64, intermediate_size=256, num_hidden_layers=3,
                      num_attention_heads=4, num_key_value_heads=2)
    return Qwen2ForCausalLM(cfg).to(dtype)


def _time(fn, repeats: int, inner: int) -> float:
    fn()
    samples = []
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(inner):
            fn()
        samples.append((time.perf_counter() - t) / inner)
    return statistics.median(samples)


def measure(threads: int, dtype: torch.dtype, repeats: int, inner: int) -> tuple[float, float]:
    """(train step seconds, decode forward seconds), medians."""
    torch.set_num_threads(threads)
    model = _model(dtype)
    ids = torch.randint(0, 1024, (16, 480))

    def train() -> None:
        model.zero_grad(set_to_none=True)
        model(input_ids=ids, labels=ids).loss.backward()

    step = _time(train, repeats, inner)
    model.eval()
    rows = torch.randint(0, 1024, (64, 1))

    def decode() -> None:
        with torch.inference_mode():
            model(input_ids=rows)

    return step, _time(decode, repeats, inner * 10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--inner", type=int, default=3)
    args = parser.parse_args()
    rows = []
    for load in ("idle", "busy"):
        spinner = mp.get_context("spawn").Process(target=_spin, daemon=True) if load == "busy" else None
        if spinner:
            spinner.start()
        try:
            for dtype in (torch.float32, torch.float64):
                for threads in (1, 2):
                    step, dec = measure(threads, dtype, args.repeats, args.inner)
                    rows.append((load, str(dtype).split(".")[-1], threads, step, dec))
        finally:
            if spinner:
                spinner.terminate()
                spinner.join()
    idle = {(d, t): (s, f) for load, d, t, s, f in rows if load == "idle"}
    print(f"torch {torch.__version__}, {mp.cpu_count()} CPUs; medians of {args.repeats} x {args.inner}\n")
    print("| machine | dtype | threads | train step (ms) | decode forward (ms) | train step vs idle |")
    print("|---|---|---:|---:|---:|---:|")
    for load, d, t, s, f in rows:
        print(f"| {load} | {d} | {t} | {s * 1e3:.0f} | {f * 1e3:.2f} | {s / idle[(d, t)][0]:.2f}x |")


if __name__ == "__main__":
    main()
