"""Training-time routing perturbations: context drop-off and drop-in (``moc-semantics.md`` §5).

Per query token and head, after top-k:

* drop-off: draw ``p ~ U(0, p_max)`` and remove ``floor(p * n)`` of the ``n`` routed chunks, uniformly;
* drop-in: draw ``m ~ Poisson(lambda)`` and add ``min(m, remaining)`` chunks drawn uniformly from the
  candidates the router did not select *(choice: chunks removed by drop-off are not drawn back in)*.

Both act on candidates only, so anchors are never dropped and causality holds.
"""

from __future__ import annotations

import torch

from moc.config import MoCConfig


def _ranks(keys: torch.Tensor) -> torch.Tensor:
    """Rank of every entry along the last dim (0 = smallest)."""
    return keys.argsort(dim=-1).argsort(dim=-1)


def perturb_selection(
    scores: torch.Tensor,
    allowed: torch.Tensor,
    top_k: int,
    config: MoCConfig,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """Top-k selection with drop-off and drop-in applied, for one tile of queries.

    Args:
        scores: ``(B, H, T, C)`` float32 routing scores, ``-inf`` where not a candidate.
        allowed: ``(T, C)`` bool candidate mask.
        top_k: routed chunks before perturbation.
        config: supplies ``drop_off`` (p_max) and ``drop_in`` (lambda).
        generator: random generator on ``scores.device``.

    Returns:
        ``(B, H, T, W)`` int64 selected chunk indices, ascending, padded with ``C``.
    """
    b, h, t, c = scores.shape
    device = scores.device
    chunk_ids = torch.arange(c, device=device)
    selected = torch.zeros(b, h, t, c, dtype=torch.bool, device=device)
    if top_k > 0:
        # A stable descending sort ranks ties toward the lower index, as the unperturbed router does.
        order = torch.sort(scores, dim=-1, descending=True, stable=True).indices[..., :top_k]
        finite = torch.isfinite(torch.gather(scores, -1, order))
        selected.scatter_(-1, order, finite)
    routed = selected.clone()

    if config.drop_off > 0:
        n = selected.sum(-1)  # (B, H, T)
        p = torch.rand(b, h, t, device=device, generator=generator) * config.drop_off
        n_drop = torch.floor(p * n).long()
        keys = torch.rand(b, h, t, c, device=device, generator=generator).masked_fill(~selected, 2.0)
        selected &= ~(_ranks(keys) < n_drop[..., None])

    if config.drop_in > 0:
        pool = allowed[None, None] & ~routed
        m = torch.poisson(torch.full((b, h, t), float(config.drop_in), device=device), generator=generator)
        n_add = torch.minimum(m.long(), pool.sum(-1))
        keys = torch.rand(b, h, t, c, device=device, generator=generator).masked_fill(~pool, 2.0)
        selected |= _ranks(keys) < n_add[..., None]

    width = int(selected.sum(-1).max()) if selected.numel() else 0
    ordered = torch.where(selected, chunk_ids, c).sort(dim=-1).values
    return ordered[..., :width]
