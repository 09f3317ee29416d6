"""``flex``: FlexAttention with a ``BlockMask`` built directly from the routing plan.

Block pairs (128 x 128 tokens) whose every (query, key) pair is mandatory become *full* blocks (no
``mask_mod`` evaluated); block pairs touched by a mandatory or routed chunk become *partial* blocks, where
the ``mask_mod`` checks each token pair exactly. The mask is built with ``BlockMask.from_kv_blocks``
(no dense ``L x L`` evaluation) and ``flex_attention`` runs compiled.

On CPU FlexAttention has a forward only; on CUDA it has forward and backward.
"""

from __future__ import annotations

import functools

import torch

from moc.routing.plan import RoutingPlan

BLOCK_SIZE = 128


@functools.cache
def _compiled_flex():
    from torch.nn.attention.flex_attention import flex_attention

    return torch.compile(flex_attention, dynamic=False)


def _indices(blocks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(count, indices) in the ``from_kv_blocks`` format from a ``(B, H, NQ, NK)`` bool block matrix."""
    counts = blocks.sum(-1, dtype=torch.int32)
    order = torch.argsort((~blocks).to(torch.int8), dim=-1, stable=True).to(torch.int32)
    return counts, order


def build_block_mask(plan: RoutingPlan, device: torch.device):
    """The ``BlockMask`` of ``plan`` on ``device`` (see the module docstring)."""
    from torch.nn.attention.flex_attention import BlockMask

    graph, chunks = plan.graph, plan.chunks
    b, h, length, k = plan.selected.shape
    c = chunks.num_chunks
    num_blocks = -(-length // BLOCK_SIZE)
    padded = num_blocks * BLOCK_SIZE

    token_chunk = chunks.token_chunk.to(device).long()
    token_block = torch.arange(length, device=device) // BLOCK_SIZE
    block_chunk = torch.zeros(num_blocks, c, device=device)
    block_chunk[token_block, token_chunk] = 1.0  # which chunks overlap each block

    mandatory = graph.mandatory.to(device)
    touched = (block_chunk @ mandatory.float() @ block_chunk.T) > 0
    full = (block_chunk @ (~mandatory).float() @ block_chunk.T) == 0
    full[:, -1] &= length == padded  # a ragged last key block needs the mask_mod's bounds check

    routed = torch.zeros(b, h, num_blocks, c + 1, device=device)
    selected = plan.selected.long().to(device) % (c + 1)  # -1 goes to the spare column c
    routed.view(b, h, -1).scatter_(
        -1, (token_block[:, None] * (c + 1) + selected).reshape(b, h, -1), 1.0, reduce="add"
    )
    routed_blocks = (routed[..., :c] @ block_chunk.T) > 0

    full = full.expand(b, h, -1, -1)
    partial = (touched | routed_blocks) & ~full
    kv_num, kv_index = _indices(partial)
    full_num, full_index = _indices(full.contiguous())

    chunk_of = torch.zeros(padded, dtype=torch.long, device=device)
    chunk_of[:length] = token_chunk
    mandatory_flat = mandatory.reshape(-1)
    routed_of = torch.full((b, h, padded, k), -1, dtype=torch.long, device=device)
    routed_of[:, :, :length] = plan.selected.to(device).long()

    def mask_mod(bi, hi, q_idx, kv_idx):
        key_chunk = chunk_of[kv_idx]
        allowed = mandatory_flat[chunk_of[q_idx] * c + key_chunk]
        for j in range(k):
            allowed = allowed | (routed_of[bi, hi, q_idx, j] == key_chunk)
        return allowed & (kv_idx < length)

    return BlockMask.from_kv_blocks(
        kv_num,
        kv_index,
        full_num,
        full_index,
        BLOCK_SIZE=BLOCK_SIZE,
        mask_mod=mask_mod,
        seq_lengths=(length, length),
    )


def attend(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, plan: RoutingPlan, scale: float
) -> torch.Tensor:
    """MoC attention through compiled FlexAttention (forward only on CPU)."""
    if q.device.type == "cpu" and torch.is_grad_enabled() and any(t.requires_grad for t in (q, k, v)):
        raise ValueError(
            "backend='flex' has no backward on CPU (FlexAttention limitation); use backend='varlen' for "
            "training, or call under torch.no_grad()"
        )
    block_mask = build_block_mask(plan, q.device)
    return _compiled_flex()(
        q.contiguous(), k.contiguous(), v.contiguous(), block_mask=block_mask, scale=scale
    )
