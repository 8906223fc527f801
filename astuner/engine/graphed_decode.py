"""CUDA-graph decoding with a static KV cache, for the transformers engine on a GPU.

Eager decoding of a small model is bound by Python and kernel-launch overhead: every token of a
24-layer model launches hundreds of kernels. Here the prompt is prefilled eagerly into a static
cache, the first decode step runs eagerly, and that step is then captured once as a CUDA graph
and replayed for every later token, so a decode step costs one graph launch plus sampling.

Shapes must be static for a graph, so the batch is padded to a power of two (padding rows decode
garbage that nobody reads) and finished rows keep decoding until the whole batch is done. The
attention mask is an additive ``[B, 1, 1, L]`` tensor updated in place: key positions that are
prompt padding or not yet written are masked.

Not guaranteed: support for every architecture or transformers version. Any failure while setting
up or capturing raises ``GraphUnsupported``; the engine then resets the batch, decodes it again
eagerly (seeded sampling makes that draw the same tokens) and stays eager for good (one warning).
"""

from __future__ import annotations

import inspect
from typing import Any, Callable

import torch


class GraphUnsupported(RuntimeError):
    """This model / library version cannot be decoded with a captured graph."""


def _bucket(n: int, cap: int) -> int:
    size = 1
    while size < n:
        size *= 2
    return min(size, max(cap, n))


class GraphedDecoder:
    """Decodes one left-padded batch; ``step_fn(logits, step) -> bool`` samples and says whether to go on."""

    def __init__(self, model: Any, cache_kwarg: str, max_batch_size: int) -> None:
        self.model = model
        self.cache_kwarg = cache_kwarg
        self.max_batch_size = max_batch_size
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        params = inspect.signature(base.forward).parameters
        self.pass_cache_position = "cache_position" in params
        self.dtype = next(model.parameters()).dtype

    def decode(
        self,
        input_ids: torch.Tensor,
        prompt_mask: torch.Tensor,
        max_new_tokens: int,
        step_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor | None],
    ) -> None:
        """Prefill, then call ``step_fn(logits[:B], positions)`` each step; it returns the next
        tokens ``[B]`` or None to stop."""
        from transformers import StaticCache

        rows, width = input_ids.shape
        device = input_ids.device
        size = _bucket(rows, self.max_batch_size)
        length = -(-(width + max_new_tokens) // 128) * 128
        ids = torch.zeros((size, width), dtype=torch.long, device=device)
        ids[:rows] = input_ids
        keys = torch.zeros((size, length), dtype=torch.bool, device=device)
        keys[:rows, :width] = prompt_mask.bool()
        keys[rows:, width - 1] = True
        try:
            cache = StaticCache(config=self.model.config, max_cache_len=length)
        except TypeError as exc:
            raise GraphUnsupported(f"StaticCache: {exc}") from exc
        neg = torch.finfo(self.dtype).min
        causal = torch.ones((width, length), dtype=torch.bool, device=device).tril()
        prefill_mask = torch.where(keys[:, None, None, :] & causal[None, None], 0.0, neg).to(self.dtype)
        positions = (keys[:, :width].long().cumsum(-1) - 1).clamp(min=0)
        logits = self._forward(ids, prefill_mask, positions, cache, torch.arange(width, device=device))
        step_ids = torch.zeros((size, 1), dtype=torch.long, device=device)
        step_pos = positions[:, -1:].clone()
        step_mask = torch.where(keys[:, None, None, :], 0.0, neg).to(self.dtype)
        step_cpos = torch.tensor([width], dtype=torch.long, device=device)
        graph = None
        out = None
        for step in range(max_new_tokens):
            tokens = step_fn(logits[:rows], step_pos[:rows, 0])
            if tokens is None or step == max_new_tokens - 1:
                return
            step_ids[:rows, 0] = tokens
            step_pos += 1
            step_mask[:, 0, 0, width + step] = 0.0
            step_cpos.fill_(width + step)
            if step == 0:
                logits = self._forward(step_ids, step_mask, step_pos, cache, step_cpos)
                graph, out = self._capture(step_ids, step_mask, step_pos, cache, step_cpos)
            else:
                graph.replay()
                logits = out

    def _forward(self, ids, mask, positions, cache, cache_position) -> torch.Tensor:
        kwargs = {self.cache_kwarg: cache}
        if self.pass_cache_position:
            kwargs["cache_position"] = cache_position
        out = self.model(
            input_ids=ids,
            attention_mask={"full_attention": mask, "sliding_attention": mask},
            position_ids=positions,
            use_cache=True,
            logits_to_keep=1,
            **kwargs,
        )
        return out.logits[:, -1, :]

    def _capture(self, ids, mask, positions, cache, cache_position):
        """Record one decode step. Capturing records work without running it, so the cache and its
        counters are left as they were after the eager step."""
        torch.cuda.synchronize()
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):
                out = self._forward(ids, mask, positions, cache, cache_position)
        except Exception as exc:  # any capture failure means: decode this model eagerly
            raise GraphUnsupported(f"{type(exc).__name__}: {exc}") from exc
        return graph, out
