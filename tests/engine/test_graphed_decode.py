"""CUDA-graph decoding equals eager decoding (GPU only; skipped on CPU machines such as CI).

Run on a GPU machine with ``python -m pytest tests/engine/test_graphed_decode.py``. Float32 weights make
the comparison exact (bfloat16 can flip near-ties between the two kernel orders).
"""

from __future__ import annotations

import asyncio

import pytest
import torch

from astuner.engine.base import SamplingParams

pytestmark = pytest.mark.gpu


def _model():
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    cfg = Qwen2Config(vocab_size=512, hidden_size=128, intermediate_size=256, num_hidden_layers=3,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024)
    model = Qwen2ForCausalLM(cfg)
    for p in model.parameters():
        p.data.normal_(0, 0.2)
    return model.cuda().float().eval()


class _Tok:
    pad_token_id = 0


def _run(cuda_graphs: bool, prompts, params):
    from astuner.engine.transformers_engine import TransformersEngine

    engine = TransformersEngine("unused", model=_model(), tokenizer=_Tok(), max_batch_size=8, cuda_graphs=cuda_graphs)

    async def go():
        return await asyncio.gather(*(engine.generate(p, q) for p, q in zip(prompts, params)))

    try:
        return asyncio.run(go()), engine
    finally:
        engine.close()


def test_graphed_equals_eager_greedy_and_seeded():
    prompts = [[5, 6, 7], [9] * 20, [11, 12], [3, 4, 5, 6, 7, 8], [100, 200, 300]]
    params = [
        SamplingParams(max_tokens=40, temperature=0.0),
        SamplingParams(max_tokens=25, temperature=1.0, seed=7),
        SamplingParams(max_tokens=40, temperature=0.7, top_p=0.9, seed=8, stop_token_ids=[17]),
        SamplingParams(max_tokens=3, temperature=1.0, seed=9),
        SamplingParams(max_tokens=33, temperature=1.0, seed=10, stop_token_ids=[1, 2, 3]),
    ]
    graphed, engine = _run(True, prompts, params)
    assert engine._graphed is not None, "graphed decoding fell back to eager"
    eager, _ = _run(False, prompts, params)
    for g, e in zip(graphed, eager):
        assert g.token_ids == e.token_ids
        assert g.finish_reason == e.finish_reason
        assert torch.allclose(torch.tensor(g.logprobs), torch.tensor(e.logprobs), atol=1e-4)
