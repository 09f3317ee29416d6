"""Forward+backward time of reference vs varlen on small problems: the `auto` threshold (performance.md)."""

import time

import torch

from moc import Layout, MoCConfig, moc_attention


def fwd_bwd_ms(layout: Layout, batch: int, heads: int, backend: str, repeats: int = 5) -> float:
    q, k, v = (torch.randn(batch, heads, len(layout), 32, requires_grad=True) for _ in range(3))
    times = []
    for _ in range(repeats + 1):  # the first run is a warm-up
        start = time.perf_counter()
        moc_attention(q, k, v, layout, MoCConfig(top_k=2), backend=backend).sum().backward()
        times.append(time.perf_counter() - start)
    return sorted(times[1:])[repeats // 2] * 1e3


cases = [(Layout.interleaved([3] * 6, 16, 4, 4), 16, 4), (Layout.interleaved([2] * 4, 16, 4, 4), 1, 2)]
for layout, batch, heads in cases:
    ref, var = (fwd_bwd_ms(layout, batch, heads, b) for b in ("reference", "varlen"))
    print(f"B={batch} H={heads} L={len(layout)}: reference {ref:.1f} ms, varlen {var:.1f} ms")
