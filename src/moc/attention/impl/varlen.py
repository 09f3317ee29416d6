"""``varlen``: the exact, trainable MoC backend for CPU (and, through the math kernel, any device).

It follows MoBA's structure generalised to MoC:

* **Mandatory part.** Query chunks with the same mandatory key set (text anchor + own shot, or own chunk)
  form one group; each group is one dense attention call over its gathered keys. Groups partition the
  queries, so their outputs are written, not merged.
* **Routed part.** For every chunk ``c``, the queries (per batch element and head) that routed to it are
  gathered into a ``(B, H, n_max, D)`` block (padded to the largest head) and attend to the keys of ``c``,
  a slice of ``k`` (no copy). Each result is merged into the running output by log-sum-exp.
* **Backward.** Every block's gradient is computed from the final merged output and log-sum-exp
  (the ring-attention / MoBA trick), so no block needs the gradient of its own partial softmax.

Nothing of size ``L x L`` or ``(C, H, L)`` is materialised: memory is linear in ``L`` for a fixed chunk
size and top_k (the largest transient is one gathered query block).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from moc.attention.impl.kernels import Kernel, attention_with_lse, attention_with_lse_backward
from moc.routing.graph import Ranges
from moc.routing.plan import RoutingPlan

# Query rows per (batch, head) in one routed call: bounds the gathered-block transients (and so peak
# memory) without hurting the fused kernel, which runs at full speed from a few hundred rows.
MAX_BLOCK_ROWS = 1024
# Mandatory groups are computed in tiles of at most this many queries against parts of at most this many
# keys, so no call returns a full-length output or key gradient (dense text queries attend to all keys).
MAX_GROUP_TILE = 2048
# Key ranges shorter than this (captions) are gathered into one part rather than given a call each.
SHORT_RANGE = 128


@dataclass(frozen=True)
class RoutedBlock:
    """The queries that routed to one chunk, packed per (batch, head) and padded to ``n_max`` rows.

    A chunk chosen by many queries yields several blocks. ``gather_rows`` (int32) index
    ``q.reshape(B * H * L, D)``, padding reads row 0; ``write_rows`` (int32) index the output accumulator,
    whose extra last row ``B * H * L`` absorbs the padding.
    """

    chunk: int
    n_max: int
    gather_rows: torch.Tensor
    write_rows: torch.Tensor


def routed_blocks(plan: RoutingPlan) -> list[RoutedBlock]:
    """Group the plan's (batch, head, query, chunk) selections by chunk, queries ascending.

    Row indices are int32 (half the memory of int64); the transient arrays are freed as soon as used.
    """
    b, h, length, k = plan.selected.shape
    c = plan.chunks.num_chunks
    bh = b * h
    device = plan.selected.device
    flat = plan.selected.reshape(-1)
    positions = (flat >= 0).nonzero().flatten()
    if positions.numel() == 0:
        return []
    # Selections are laid out (batch*head, token, slot); a stable sort by chunk alone keeps them in
    # (batch*head, token) order inside each chunk.
    chunk, order = torch.sort(flat[positions], stable=True)
    positions = positions[order]
    del order
    head_row = (positions // (length * k)).to(torch.int32)
    source = head_row * length + ((positions // k) % length).to(torch.int32)
    del positions

    group = chunk.long() * bh + head_row  # (chunk, batch*head) group of every selection
    counts = torch.bincount(group, minlength=c * bh)
    n_max = counts.view(c, bh).max(1).values  # (C,)
    group_start = torch.cumsum(counts, 0) - counts
    rank = torch.arange(group.numel(), device=device) - group_start[group]
    del group, group_start, counts
    block_size = n_max * bh
    block_start = torch.cumsum(block_size, 0) - block_size
    chunk = chunk.long()
    slot = block_start[chunk] + head_row.long() * n_max[chunk] + rank
    del rank, chunk, head_row

    total = int(block_size.sum())
    gather_rows = torch.zeros(total, dtype=torch.int32, device=device)
    write_rows = torch.full((total,), bh * length, dtype=torch.int32, device=device)
    gather_rows[slot] = source
    write_rows[slot] = source
    del slot, source

    blocks = []
    for ci, (start, size, n) in enumerate(zip(block_start.tolist(), block_size.tolist(), n_max.tolist())):
        if not n:
            continue
        gather = gather_rows[start : start + size].view(bh, n)
        write = write_rows[start : start + size].view(bh, n)
        # Busy chunks are split into several blocks of at most MAX_BLOCK_ROWS rows per (batch, head).
        for lo in range(0, n, MAX_BLOCK_ROWS):
            hi = min(n, lo + MAX_BLOCK_ROWS)
            rows_g, rows_w = gather[:, lo:hi].reshape(-1), write[:, lo:hi].reshape(-1)
            blocks.append(RoutedBlock(ci, hi - lo, rows_g, rows_w))
    return blocks


def _take(x: torch.Tensor, ranges: Ranges) -> torch.Tensor:
    """Tokens of ``x`` (B, H, L, D) in ``ranges``, concatenated along L (a view for a single range)."""
    if len(ranges) == 1:
        start, end = ranges[0]
        return x[:, :, start:end]
    return torch.cat([x[:, :, s:e] for s, e in ranges], dim=2)


def _add_ranges(target: torch.Tensor, ranges: Ranges, values: torch.Tensor) -> None:
    """``target[:, :, ranges] += values`` for ``values`` laid out as ``_take`` gathers them."""
    offset = 0
    for start, end in ranges:
        target[:, :, start:end] += values[:, :, offset : offset + end - start]
        offset += end - start


def _group_parts(query_ranges: Ranges, key_ranges: Ranges) -> tuple[list[Ranges], list[Ranges]]:
    """Query tiles and key parts of one mandatory group (see MAX_GROUP_TILE and SHORT_RANGE)."""
    tiles = [
        ((s, min(e, s + MAX_GROUP_TILE)),)
        for start, e in query_ranges
        for s in range(start, e, MAX_GROUP_TILE)
    ]
    short = tuple(r for r in key_ranges if r[1] - r[0] < SHORT_RANGE)
    parts = [
        ((s, min(e, s + MAX_GROUP_TILE)),)
        for start, e in key_ranges
        if e - start >= SHORT_RANGE
        for s in range(start, e, MAX_GROUP_TILE)
    ]
    return tiles, parts + ([short] if short else [])


def _merge_into(out: torch.Tensor, lse: torch.Tensor, o: torch.Tensor, part_lse: torch.Tensor) -> None:
    """Merge a partial result ``(o, part_lse)`` into the running ``(out, lse)``, in place, by log-sum-exp."""
    new_lse = torch.logaddexp(lse, part_lse.to(lse.dtype))
    out.mul_(torch.exp(lse - new_lse)[..., None])
    out += o.to(out.dtype).mul_(torch.exp(part_lse - new_lse)[..., None])
    lse.copy_(new_lse)


class _VarlenMoCFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, plan: RoutingPlan, scale: float, kernel: Kernel):  # type: ignore[override]
        q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
        blocks = routed_blocks(plan)  # before the accumulators, so its transients do not stack on them
        b, h, length, d = q.shape
        rows = b * h * length
        # float32 accumulators with one spare row that absorbs the padding of routed blocks.
        acc_dtype = torch.float64 if q.dtype == torch.float64 else torch.float32
        out = torch.zeros(rows + 1, d, dtype=acc_dtype, device=q.device)
        lse = torch.full((rows + 1,), float("-inf"), dtype=acc_dtype, device=q.device)
        out4, lse3 = out[:rows].view(b, h, length, d), lse[:rows].view(b, h, length)

        for group in plan.graph.groups:
            tiles, parts = _group_parts(group.query_ranges, group.key_ranges)
            for ((qs, qe),) in tiles:
                for part in parts:
                    o, part_lse = attention_with_lse(
                        q[:, :, qs:qe], _take(k, part), _take(v, part), scale, kernel
                    )
                    _merge_into(out4[:, :, qs:qe], lse3[:, :, qs:qe], o, part_lse)

        q_rows = q.view(rows, d)
        bounds = plan.chunks.bounds
        for block in blocks:
            start, end = bounds[block.chunk]
            qg = q_rows.index_select(0, block.gather_rows).view(b, h, block.n_max, d)
            o, part_lse = attention_with_lse(qg, k[:, :, start:end], v[:, :, start:end], scale, kernel)
            write_rows = block.write_rows.long()  # index_copy_ takes int64 indices only
            merged, merged_lse = out.index_select(0, write_rows), lse.index_select(0, write_rows)
            _merge_into(merged, merged_lse, o.reshape(-1, d), part_lse.reshape(-1))
            out.index_copy_(0, write_rows, merged)
            lse.index_copy_(0, write_rows, merged_lse)

        result = out4.to(q.dtype)
        ctx.save_for_backward(q, k, v, result, lse)
        ctx.plan, ctx.blocks, ctx.scale, ctx.kernel = plan, blocks, scale, kernel
        return result

    @staticmethod
    def backward(ctx, grad_out):  # type: ignore[override]
        q, k, v, out, lse = ctx.saved_tensors
        plan, blocks, scale, kernel = ctx.plan, ctx.blocks, ctx.scale, ctx.kernel
        b, h, length, d = q.shape
        rows = b * h * length
        grad_out = grad_out.contiguous()
        acc_dtype = torch.float64 if q.dtype == torch.float64 else torch.float32
        dq = torch.zeros(rows + 1, d, dtype=acc_dtype, device=q.device)
        dk = torch.zeros(b, h, length, d, dtype=acc_dtype, device=q.device)
        dv = torch.zeros_like(dk)
        dq4, lse3 = dq[:rows].view(b, h, length, d), lse[:rows].view(b, h, length)

        for group in plan.graph.groups:
            tiles, parts = _group_parts(group.query_ranges, group.key_ranges)
            for ((qs, qe),) in tiles:
                for part in parts:
                    gq, gk, gv = attention_with_lse_backward(
                        grad_out[:, :, qs:qe],
                        q[:, :, qs:qe],
                        _take(k, part),
                        _take(v, part),
                        out[:, :, qs:qe],
                        lse3[:, :, qs:qe],
                        scale,
                        kernel,
                    )
                    dq4[:, :, qs:qe] += gq.to(acc_dtype)
                    _add_ranges(dk, part, gk.to(acc_dtype))
                    _add_ranges(dv, part, gv.to(acc_dtype))

        q_rows, do_rows, out_rows = q.view(rows, d), grad_out.view(rows, d), out.view(rows, d)
        bounds = plan.chunks.bounds
        for block in blocks:
            start, end = bounds[block.chunk]
            shape = (b, h, block.n_max, d)
            # Padding rows get a zero output gradient, so they add nothing to dk and dv.
            valid = (block.write_rows < rows).to(grad_out.dtype)[:, None]
            gq, gk, gv = attention_with_lse_backward(
                (do_rows.index_select(0, block.gather_rows) * valid).view(shape),
                q_rows.index_select(0, block.gather_rows).view(shape),
                k[:, :, start:end],
                v[:, :, start:end],
                out_rows.index_select(0, block.gather_rows).view(shape),
                lse.index_select(0, block.gather_rows).view(shape[:-1]),
                scale,
                kernel,
            )
            dq.index_add_(0, block.write_rows, gq.reshape(-1, d).to(acc_dtype))
            dk[:, :, start:end] += gk.to(acc_dtype)
            dv[:, :, start:end] += gv.to(acc_dtype)

        return dq4.to(q.dtype), dk.to(k.dtype), dv.to(v.dtype), None, None, None


def attend(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    plan: RoutingPlan,
    scale: float,
    kernel: Kernel = "auto",
) -> torch.Tensor:
    """MoC attention of ``(B, H, L, D)`` q/k/v under ``plan``; differentiable in q, k and v."""
    return _VarlenMoCFunction.apply(q, k, v, plan, scale, kernel)
