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


@dataclass(frozen=True)
class RoutedBlock:
    """The queries that routed to one chunk, packed per (batch, head) and padded to ``n_max`` rows.

    ``gather_rows`` index ``q.reshape(B * H * L, D)`` (padding reads row 0); ``write_rows`` index the
    output accumulator, whose extra last row ``B * H * L`` absorbs the padding.
    """

    chunk: int
    n_max: int
    gather_rows: torch.Tensor
    write_rows: torch.Tensor


def routed_blocks(plan: RoutingPlan) -> list[RoutedBlock]:
    """Group the plan's (batch, head, query, chunk) selections by chunk, queries ascending."""
    b, h, length, k = plan.selected.shape
    c = plan.chunks.num_chunks
    bh = b * h
    device = plan.selected.device
    flat = plan.selected.reshape(-1)
    positions = (flat >= 0).nonzero().flatten()
    if positions.numel() == 0:
        return []
    chunk = flat[positions].long()
    head_row = positions // (length * k)  # batch * H + head
    token = (positions // k) % length
    key = chunk * bh + head_row
    order = torch.sort(key, stable=True).indices  # stable: tokens stay ascending within a group
    key, chunk, head_row, token = key[order], chunk[order], head_row[order], token[order]

    counts = torch.bincount(key, minlength=c * bh).view(c, bh)
    n_max = counts.max(1).values  # (C,)
    group_start = torch.cumsum(counts.reshape(-1), 0) - counts.reshape(-1)
    rank = torch.arange(key.numel(), device=device) - group_start[key]
    block_size = n_max * bh
    block_start = torch.cumsum(block_size, 0) - block_size
    slot = block_start[chunk] + head_row * n_max[chunk] + rank

    total = int(block_size.sum())
    source = head_row * length + token
    gather_rows = torch.zeros(total, dtype=torch.long, device=device)
    write_rows = torch.full((total,), bh * length, dtype=torch.long, device=device)
    gather_rows[slot] = source
    write_rows[slot] = source

    blocks = []
    for ci, (start, size, n) in enumerate(zip(block_start.tolist(), block_size.tolist(), n_max.tolist())):
        if n:
            blocks.append(
                RoutedBlock(ci, n, gather_rows[start : start + size], write_rows[start : start + size])
            )
    return blocks


def _take(x: torch.Tensor, ranges: Ranges) -> torch.Tensor:
    """Tokens of ``x`` (B, H, L, D) in ``ranges``, concatenated along L (a view for a single range)."""
    if len(ranges) == 1:
        start, end = ranges[0]
        return x[:, :, start:end]
    return torch.cat([x[:, :, s:e] for s, e in ranges], dim=2)


def _put(target: torch.Tensor, ranges: Ranges, values: torch.Tensor, accumulate: bool) -> None:
    offset = 0
    for start, end in ranges:
        part = values[:, :, offset : offset + end - start]
        if accumulate:
            target[:, :, start:end] += part
        else:
            target[:, :, start:end] = part
        offset += end - start


class _VarlenMoCFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, plan: RoutingPlan, scale: float, kernel: Kernel):  # type: ignore[override]
        q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
        b, h, length, d = q.shape
        rows = b * h * length
        # float32 accumulators with one spare row that absorbs the padding of routed blocks.
        acc_dtype = torch.float64 if q.dtype == torch.float64 else torch.float32
        out = torch.zeros(rows + 1, d, dtype=acc_dtype, device=q.device)
        lse = torch.full((rows + 1,), float("-inf"), dtype=acc_dtype, device=q.device)
        out4, lse3 = out[:rows].view(b, h, length, d), lse[:rows].view(b, h, length)

        for group in plan.graph.groups:
            o, part_lse = attention_with_lse(
                _take(q, group.query_ranges),
                _take(k, group.key_ranges),
                _take(v, group.key_ranges),
                scale,
                kernel,
            )
            _put(out4, group.query_ranges, o, accumulate=False)
            _put(lse3.unsqueeze(-1), group.query_ranges, part_lse.unsqueeze(-1), accumulate=False)

        blocks = routed_blocks(plan)
        q_rows = q.view(rows, d)
        bounds = plan.chunks.bounds
        for block in blocks:
            start, end = bounds[block.chunk]
            qg = q_rows.index_select(0, block.gather_rows).view(b, h, block.n_max, d)
            o, part_lse = attention_with_lse(qg, k[:, :, start:end], v[:, :, start:end], scale, kernel)
            part_lse = part_lse.reshape(-1).to(acc_dtype)
            old_lse = lse.index_select(0, block.write_rows)
            new_lse = torch.logaddexp(old_lse, part_lse)
            merged = out.index_select(0, block.write_rows) * torch.exp(old_lse - new_lse)[:, None]
            merged += o.reshape(-1, d).to(acc_dtype) * torch.exp(part_lse - new_lse)[:, None]
            out.index_copy_(0, block.write_rows, merged)
            lse.index_copy_(0, block.write_rows, new_lse)

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
        lse_kernel = lse.to(torch.float32) if acc_dtype == torch.float32 else lse
        dq = torch.zeros(rows + 1, d, dtype=acc_dtype, device=q.device)
        dk = torch.zeros(b, h, length, d, dtype=acc_dtype, device=q.device)
        dv = torch.zeros_like(dk)
        dq4, lse3 = dq[:rows].view(b, h, length, d), lse_kernel[:rows].view(b, h, length)

        for group in plan.graph.groups:
            qr, kr = group.query_ranges, group.key_ranges
            gq, gk, gv = attention_with_lse_backward(
                _take(grad_out, qr),
                _take(q, qr),
                _take(k, kr),
                _take(v, kr),
                _take(out, qr),
                _take(lse3.unsqueeze(-1), qr).squeeze(-1),
                scale,
                kernel,
            )
            _put(dq4, qr, gq.to(acc_dtype), accumulate=True)
            _put(dk, kr, gk.to(acc_dtype), accumulate=True)
            _put(dv, kr, gv.to(acc_dtype), accumulate=True)

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
                lse_kernel.index_select(0, block.gather_rows).view(shape[:-1]),
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
