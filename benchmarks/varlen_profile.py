"""Share of varlen forward time inside the fused CPU flash kernel, at 32k tokens (docs/performance.md)."""

import torch
from torch.profiler import profile

from moc import moc_attention
from moc.bench.attention import BenchSpec

spec = BenchSpec(32768)
layout, config = spec.layout(), spec.config()
q, k, v = (torch.randn(1, 4, len(layout), 64) for _ in range(3))
with torch.no_grad():
    moc_attention(q, k, v, layout, config, backend="varlen")  # warm-up
    with profile() as prof:
        moc_attention(q, k, v, layout, config, backend="varlen")
events = prof.key_averages()
total = sum(e.self_cpu_time_total for e in events)
kernel = sum(e.self_cpu_time_total for e in events if "flash_attention_for_cpu" in e.key)
print(f"fused kernel share of forward: {kernel / total:.0%}")
