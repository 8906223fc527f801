"""verl's unpadding without flash_attn (``astuner/backbone/trinity/unpad.py``), with the real trinity-rft.

Trinity-RFT 0.6.0 packs every training batch through verl's flash_attn helpers; on a machine without
flash_attn (our GPU image) the trainer's first step failed. These tests pin the PyTorch helpers'
results on a left/right-padded batch and run Trinity's own packing function through them.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("trinity")

from astuner.backbone.trinity.unpad import index_first_axis, pad_input, patch_unpadding, unpad_input  # noqa: E402

IDS = torch.tensor([[0, 0, 5, 6, 7, 0], [0, 8, 9, 1, 2, 3]])
MASK = torch.tensor([[0, 0, 1, 1, 1, 0], [0, 1, 1, 1, 1, 1]])


def test_unpad_and_pad_are_inverse_and_return_flash_attn_shapes():
    rows, indices, cu_seqlens, longest, used = unpad_input(IDS.unsqueeze(-1), MASK)
    assert rows.squeeze(-1).tolist() == [5, 6, 7, 8, 9, 1, 2, 3]
    assert indices.tolist() == [2, 3, 4, 7, 8, 9, 10, 11]
    assert cu_seqlens.tolist() == [0, 3, 8] and cu_seqlens.dtype == torch.int32
    assert longest == 5 and used.tolist() == [3, 5]
    assert torch.equal(pad_input(rows, indices, 2, 6).squeeze(-1), IDS * MASK)


def test_gradients_flow_through_the_helpers():
    hidden = torch.randn(2, 6, 3, requires_grad=True)
    rows, indices, *_ = unpad_input(hidden, MASK)
    pad_input(index_first_axis(rows, torch.arange(rows.shape[0])), indices, 2, 6).sum().backward()
    assert torch.equal(hidden.grad, MASK.unsqueeze(-1).expand(2, 6, 3).float())


def test_trinity_packs_a_batch_through_the_patched_helpers():
    pytest.importorskip("tensordict")
    from tensordict import TensorDict

    if not patch_unpadding():
        pytest.skip("flash_attn is installed here; verl uses its own helpers")
    from trinity.trainer.verl.monkey_patch import left_right_2_no_padding

    response_mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    batch = TensorDict({"input_ids": IDS, "attention_mask": MASK, "response_mask": response_mask,
                        "position_ids": (MASK.cumsum(-1) - 1).clamp(min=0)}, batch_size=[2])
    packed = left_right_2_no_padding(batch)
    assert [t.tolist() for t in packed["input_ids"].unbind()] == [[5, 6, 7], [8, 9, 1, 2, 3]]
    assert packed["indices"].tolist() == [2, 3, 4, 7, 8, 9, 10, 11]
    assert packed["max_seq_len"] == 6 and packed["max_response_len"] == 3
