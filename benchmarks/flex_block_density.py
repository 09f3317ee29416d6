"""Token density vs the 128x128 block pairs FlexAttention must visit, at 16k tokens (docs/performance.md)."""

import torch

from moc import route
from moc.attention.impl.flex import build_block_mask
from moc.bench.attention import BenchSpec

spec = BenchSpec(16384)
layout = spec.layout()
torch.manual_seed(0)
q, k = (torch.randn(1, 4, len(layout), 64) for _ in range(2))
plan = route(q, k, layout, spec.config())
mask = build_block_mask(plan, q.device)
n = mask.kv_num_blocks.shape[-1]
full, part = (m.float().mean().item() / n for m in (mask.full_kv_num_blocks, mask.kv_num_blocks))
print(
    f"token density {plan.stats().density:.2f}; block pairs visited {full + part:.0%} "
    f"(full {full:.0%}, partial {part:.0%})"
)
