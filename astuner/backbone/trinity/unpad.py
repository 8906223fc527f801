"""verl's unpadding helpers without ``flash_attn``: the same four functions in plain PyTorch.

Why: Trinity-RFT 0.6.0's trainer converts every batch to verl's packed (no-padding) layout before
the reference and old log-probabilities and the update (``left_right_2_no_padding``), whatever the
model's attention. verl 0.8.0 takes the helpers it needs (``index_first_axis``, ``pad_input``,
``rearrange``, ``unpad_input``) from ``flash_attn.bert_padding`` on every non-NPU machine, so
without the ``flash_attn`` package the trainer's first step fails with ``ModuleNotFoundError``,
after which Trinity stops and still reports success (``outcome.py`` turns that into a failed
launch). ``flash_attn`` has no wheel on PyPI for our GPU image, so ``patch_unpadding`` gives verl
these PyTorch versions when ``flash_attn`` is absent. They return what flash_attn's do (the selected
rows, their flat indices, the cumulative lengths, the longest length, the used lengths); they are
plain indexing, slower than flash_attn's kernels on large batches.

astuner's Trinity plugin calls it in every Trinity process that loads plugins (the trainer among
them, where the packing happens). Nothing changes where ``flash_attn`` is installed. ``rearrange``
is einops' (verl depends on einops); it is looked up only when called.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import torch


def index_first_axis(values: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    """Rows ``indices`` of ``values`` (first axis), differentiable."""
    return values[indices]


def unpad_input(hidden: torch.Tensor, attention_mask: torch.Tensor, unused_mask: torch.Tensor | None = None) -> tuple:
    """(kept rows of ``hidden`` (batch, seq, ...) flattened, their flat indices, cumulative lengths
    with a leading 0 (int32), the longest length, the lengths counting only ``attention_mask``)."""
    masks = attention_mask + unused_mask if unused_mask is not None else attention_mask
    lengths = masks.sum(dim=-1, dtype=torch.int32)
    used = attention_mask.sum(dim=-1, dtype=torch.int32)
    indices = torch.nonzero(masks.flatten(), as_tuple=False).flatten()
    cu_seqlens = torch.nn.functional.pad(torch.cumsum(lengths, dim=0, dtype=torch.int32), (1, 0))
    flat = hidden.reshape(hidden.shape[0] * hidden.shape[1], *hidden.shape[2:])
    return index_first_axis(flat, indices), indices, cu_seqlens, int(lengths.max().item()), used


def pad_input(hidden: torch.Tensor, indices: torch.Tensor, batch: int, seqlen: int) -> torch.Tensor:
    """The inverse of ``unpad_input``: rows back at ``indices`` of a zero (batch, seqlen, ...) tensor."""
    out = hidden.new_zeros(batch * seqlen, *hidden.shape[1:]).index_put((indices,), hidden)
    return out.reshape(batch, seqlen, *hidden.shape[1:])


def rearrange(*args: Any, **kwargs: Any) -> Any:
    from einops import rearrange as einops_rearrange

    return einops_rearrange(*args, **kwargs)


def patch_unpadding() -> bool:
    """Give verl these helpers when ``flash_attn`` is not installed; True if patched."""
    if importlib.util.find_spec("flash_attn") is not None:
        return False
    try:
        from verl.utils import attention_utils
    except ImportError:
        return False
    attention_utils._get_attention_functions = lambda: (index_first_axis, pad_input, rearrange, unpad_input)
    return True
