"""Padding-free attention for packed batches: each sample attends only to itself, at its own cost.

A packed batch is one row holding several samples (``training.sft.dataset.packed_collator``), with
the sample boundaries as ``cu_seq_lens_q`` (FlashAttention's cumulative lengths). FlashAttention 2
computes exactly that on a GPU where it is installed. Elsewhere -- CPUs, GPUs without the
flash-attn package -- transformers would run SDPA with a block-diagonal mask over the whole row,
which computes every masked-out block as well: for eight 150-token chats in one row that is 8x
the attention work, and on a CPU slower than plain padding. ``varlen_sdpa`` runs SDPA once per
sample instead (causal, no mask), so a packed batch costs what its real tokens cost.

It is registered with transformers' ``AttentionInterface`` under ``VARLEN`` and used for training
only; rows without ``cu_seq_lens_q`` (padded batches, generation) fall through to plain SDPA.

Tested in ``tests/training/sft/test_trainer.py`` (a packed row's logits equal each sample's alone).
"""

from __future__ import annotations

import importlib.util
import itertools

VARLEN = "doppel_varlen"


def varlen_sdpa(module, query, key, value, attention_mask, scaling=None, dropout: float = 0.0,
                sliding_window: int | None = None, cu_seq_lens_q=None, **kwargs):
    """Attention per packed sample; same signature and output layout as transformers' SDPA forward."""
    import torch
    import torch.nn.functional as F
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    if cu_seq_lens_q is None or query.shape[0] != 1:
        return sdpa_attention_forward(module, query, key, value, attention_mask, scaling=scaling, dropout=dropout,
                                      sliding_window=sliding_window, **kwargs)
    bounds = cu_seq_lens_q.tolist()
    gqa = query.shape[1] != key.shape[1]
    outputs = []
    for start, end in itertools.pairwise(bounds):
        q, k, v = query[:, :, start:end], key[:, :, start:end], value[:, :, start:end]
        mask = None
        if sliding_window is not None and end - start > sliding_window:
            # Causal and at most ``sliding_window`` tokens back, as the model was trained.
            i = torch.arange(end - start, device=query.device)
            mask = (i[None, :] <= i[:, None]) & (i[:, None] - i[None, :] < sliding_window)
        outputs.append(F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, is_causal=mask is None, scale=scaling,
            dropout_p=dropout if module.training else 0.0, enable_gqa=gqa))
    return torch.cat(outputs, dim=2).transpose(1, 2).contiguous(), None


def packed_attention(device_name: str) -> str:
    """The attention implementation for packed training on this device (registering ours if needed)."""
    if device_name == "cuda" and importlib.util.find_spec("flash_attn") is not None:
        return "flash_attention_2"
    from transformers import AttentionInterface

    # Registering is idempotent: the same name maps to the same function.
    AttentionInterface.register(VARLEN, varlen_sdpa)
    return VARLEN
