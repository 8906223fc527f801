"""A seeded request decodes the same whatever it shares a batch with, when the model is float64.

Why: the CPU learning miniature (``tests/experiments/test_tool_discipline_e2e.py``) must give the same numbers
on every run, but which rollouts share a decoding batch depends on timing (tool calls, the event
loop). Padding and batch size change the floating-point reduction order, so a row's logits move
by an ulp; in float32 that flips a near-tie now and then and the run diverges. In float64 the
change is ~1e-16 and a flip is practically impossible: this test pins that a request alone and the
same request in a padded batch of others give identical tokens and logprobs equal to ~1e-12.
"""

from __future__ import annotations

import asyncio

import torch

from astuner.engine.base import SamplingParams
from astuner.engine.transformers_engine import TransformersEngine


class _Tok:
    pad_token_id = 0


def _model(dtype: torch.dtype):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    cfg = Qwen2Config(vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512)
    model = Qwen2ForCausalLM(cfg)
    for p in model.parameters():
        p.data.normal_(0, 0.3)
    return model.to(dtype).eval()


def _decode(model, prompts, params):
    engine = TransformersEngine("unused", model=model, tokenizer=_Tok(), max_batch_size=16, cuda_graphs=False,
                                max_batch_wait_s=1.0, batch_window_s=0.5)

    async def go():
        return await asyncio.gather(*(engine.generate(p, q) for p, q in zip(prompts, params)))

    try:
        return asyncio.run(go()), engine.largest_batch
    finally:
        engine.close()


def test_float64_decoding_does_not_depend_on_the_batch():
    model = _model(torch.float64)
    target = [7, 8, 9, 10, 11]
    params = SamplingParams(max_tokens=60, temperature=1.0, seed=123)
    (alone,), largest_alone = _decode(model, [target], [params])
    others = [[3] * n for n in (2, 17, 40, 9, 30, 1, 25)]
    other_params = [SamplingParams(max_tokens=60, temperature=1.0, seed=s) for s in range(len(others))]
    batched, largest = _decode(model, [*others, target], [*other_params, params])
    assert largest_alone == 1 and largest == len(others) + 1, "the request did not share a batch"
    together = batched[-1]
    assert together.token_ids == alone.token_ids
    assert len(alone.token_ids) == 60
    for a, b in zip(alone.logprobs, together.logprobs):
        assert abs(a - b) < 1e-12
