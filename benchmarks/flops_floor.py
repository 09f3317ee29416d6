"""Where MoC's attention FLOPs land against dense for 8-shot world scenes of other sizes (no model needed).

The ratio counts attended pairs from routing plans (``PlanStats.flops_ratio``, routing included) with frame
chunks, top_k = 3 and causal routing, as the shipped model runs. Only the token counts matter, so random keys
stand in for a model's. It varies what sets the anchor floor: video tokens per frame (16 = the shipped 8-pixel
patches at 32x32, 64 = 4-pixel patches, 256 = a paper-like latent frame), frames per shot, caption length
(padded to the longest caption, or the mean unpadded length of held-out world captions) and how captions are
attended: every caption an anchor of every video query (``text_anchor``, the paper's choice) with caption
queries attending everywhere or to their anchors only (``text_queries``), or captions routed like frames
(``text_anchor=False``: a video query keeps its own shot's caption, in its shot anchor, and may route to
others).

Usage: python benchmarks/flops_floor.py
"""

import itertools
import statistics

import torch

from moc import Layout, MoCConfig, route
from moc.world.captions import global_caption, shot_captions, tokenize
from moc.world.data import DataConfig, WorldStream

SHOTS = 8
HEAD_DIM = 32

data = DataConfig(batch_size=64)
scripts = WorldStream(data, seed=0, split="eval").batch(0).scripts
mean_caption = round(statistics.mean(len(tokenize(c)) for s in scripts for c in shot_captions(s)))
mean_global = round(statistics.mean(len(tokenize(global_caption(s))) for s in scripts))
captions = {
    f"padded ({data.caption_tokens} + {data.global_caption_tokens})": (
        data.caption_tokens,
        data.global_caption_tokens,
    ),
    f"unpadded mean ({mean_caption} + {mean_global})": (mean_caption, mean_global),
}

generator = torch.Generator().manual_seed(0)
# (name, text_anchor, text_queries): how video queries and caption queries see the captions.
CAPTION_MODES = (("anchored", True, "dense"), ("anchored", True, "anchors"), ("routed", False, "anchors"))
SIZES = itertools.product((16, 64, 256), (3, 6, 12), captions.items(), CAPTION_MODES)

HEADER = ("tokens/frame", "frames/shot", "captions", "captions of video queries", "text queries", "tokens")
print("| " + " | ".join((*HEADER, "text share", "FLOPs vs dense")) + " |")
print("|---|---|---|---|---|---|---|---|")
for per_frame, frames, (caption_name, (caption, global_tokens)), (mode, text_anchor, text_queries) in SIZES:
    layout = Layout.interleaved([frames] * SHOTS, per_frame, caption, global_tokens)
    config = MoCConfig(top_k=3, causal=True, text_anchor=text_anchor, text_queries=text_queries)
    q, k = torch.randn(2, 1, 1, layout.num_tokens, HEAD_DIM, generator=generator)
    ratio = route(q, k, layout, config).stats().flops_ratio
    share = layout.num_text_tokens / layout.num_tokens
    print(
        f"| {per_frame} | {frames} | {caption_name} | {mode} | {text_queries} | {layout.num_tokens} "
        f"| {share:.2f} | {ratio:.2f} |"
    )
