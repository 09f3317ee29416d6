"""Context drop-off and drop-in (moc-semantics.md §5): expected counts, anchors kept, causality kept."""

from __future__ import annotations

import math

import torch

from moc import Layout, MoCConfig, route
from tests.conftest import random_qkv

LAYOUT = Layout.interleaved([4] * 8, tokens_per_frame=2, caption_tokens=1, global_caption_tokens=2)


def _counts(config, seed=0, heads=8):
    q, k, _ = random_qkv(LAYOUT, batch=4, heads=heads, dim=8)
    base = route(q, k, LAYOUT, config)
    perturbed = route(q, k, LAYOUT, config, training=True, generator=torch.Generator().manual_seed(seed))
    return base, perturbed


def _sets(plan):
    sel = plan.selected
    return [set(row[row >= 0].tolist()) for row in sel.reshape(-1, sel.shape[-1])]


def test_drop_off_removes_the_expected_number_of_chunks():
    p_max = 0.8
    base, pert = _counts(MoCConfig(top_k=5, drop_off=p_max))
    n = base.num_selected.flatten()
    dropped = (n - pert.num_selected.flatten()).double()
    # E[floor(U * p_max * n)] = sum_{j=1}^{floor(p_max n)} (1 - j / (p_max n)) for U ~ U(0, 1).
    expected = torch.tensor(
        [
            sum(1 - j / (p_max * m) for j in range(1, math.floor(p_max * m) + 1)) if m else 0.0
            for m in n.tolist()
        ]
    )
    assert bool((dropped >= 0).all()) and bool((dropped <= torch.floor(p_max * n)).all())
    sigma = dropped.std() / math.sqrt(len(dropped))
    assert abs(dropped.mean() - expected.mean()) < 4 * sigma + 1e-3, (dropped.mean(), expected.mean())
    # Drop-off only removes routed chunks.
    assert all(p <= b for p, b in zip(_sets(pert), _sets(base)))


def test_drop_in_adds_the_expected_number_of_candidates():
    lam = 1.5
    base, pert = _counts(MoCConfig(top_k=2, drop_in=lam))
    graph = base.graph
    tc = base.chunks.token_chunk.long()
    remaining = (graph.candidate[tc].sum(-1)[None, None] - base.num_selected).flatten()
    added = (pert.num_selected - base.num_selected).flatten().double()

    # E[min(m, R)] for m ~ Poisson(lam).
    def expected_min(r):
        pmf = [math.exp(-lam) * lam**j / math.factorial(j) for j in range(r)]
        return sum(j * p for j, p in enumerate(pmf)) + r * (1 - sum(pmf))

    expected = torch.tensor([expected_min(int(r)) for r in remaining.tolist()])
    sigma = added.std() / math.sqrt(len(added))
    assert abs(added.mean() - expected.mean()) < 4 * sigma + 1e-3
    assert bool((added <= remaining).all())
    assert all(b <= p for p, b in zip(_sets(pert), _sets(base)))


def test_perturbations_keep_anchors_and_causality():
    _, pert = _counts(MoCConfig(top_k=3, drop_off=1.0, drop_in=3.0))
    graph = pert.graph
    tc = pert.chunks.token_chunk.long()
    mandatory = graph.mandatory[tc][:, tc]
    assert bool((pert.token_mask() >= mandatory).all()), "an anchor was dropped"
    valid = pert.selected >= 0
    own = tc[None, None, :, None].expand_as(pert.selected)
    assert bool((pert.selected[valid] < own[valid]).all()), "drop-in broke causality"
    cand = graph.candidate[tc][None, None].expand(*pert.selected.shape[:3], -1)
    picked = torch.gather(cand, -1, pert.selected.long().clamp_min(0))
    assert bool(picked[valid].all()), "a non-candidate was added"
    for row in _sets(pert):
        assert len(row) == len(set(row))


def test_training_perturbations_are_reproducible_by_generator():
    config = MoCConfig(top_k=3, drop_off=0.5, drop_in=1.0)
    q, k, _ = random_qkv(LAYOUT)
    a = route(q, k, LAYOUT, config, training=True, generator=torch.Generator().manual_seed(7))
    b = route(q, k, LAYOUT, config, training=True, generator=torch.Generator().manual_seed(7))
    c = route(q, k, LAYOUT, config, training=True, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a.selected, b.selected)
    assert not torch.equal(a.selected, c.selected)
