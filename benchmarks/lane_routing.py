"""Do queries route to chunks that show *their* character? Routing precision per token, by chunk size.

A frame of the shot world at 32x32 with 8-pixel patches is 16 tokens in 4 patch rows; with two characters
the top two rows are one character's lane and the bottom two the other's. A whole-frame chunk (16 tokens)
mixes both characters and the background in its mean key; a half-frame chunk (8 tokens) is one lane. This
script runs one joint forward pass (every shot at noise level ``--t``) over held-out ground-truth scenes with
MoC routing at each ``chunk:top_k`` pair (equal routed tokens per query: 16:4 and 8:8) and reports, over all
layers and heads:

- **character**: of the video chunks from other shots that a video query showing character ``c`` routed to,
  the share that show ``c`` (a chunk shows ``c`` when one of its tokens lies in ``c``'s lane), against the
  share of all candidate chunks from other shots that do (uniform routing);
- **character tokens**: the same counted in tokens: the share of the routed video tokens that lie in ``c``'s
  lane (a whole-frame chunk that shows ``c`` also brings the other lane);
- **place**: the same for chunks from shots at the query's place.

    python benchmarks/lane_routing.py runs/dense_stage11/model.safetensors \
        runs/default_stage11/model.safetensors
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field, replace

import torch

from moc.layout import Layout, VideoSegment
from moc.layout.chunks import VIDEO
from moc.models.attention import AttentionRecord, AttentionSpec
from moc.routing import RoutingPlan
from moc.train.checkpoint import load_model
from moc.world.data import Batch, DataConfig, WorldStream

# Character slots per token: 0 (none or text) and 1 + id for the ten ids 0-9.
SLOTS = 11


def token_ids(batch: Batch, layout: Layout, columns: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(B, L)`` character shown by each token (``1 +`` id; 0: none or text) and ``(L,)`` shot of video
    tokens (-1 for text)."""
    character = torch.zeros(batch.ids.lanes.shape[0], layout.num_tokens, dtype=torch.int64)
    shot = torch.full((layout.num_tokens,), -1, dtype=torch.int64)
    for segment, start in zip(layout.segments, layout.offsets):
        if not isinstance(segment, VideoSegment):
            continue
        index = torch.arange(segment.num_tokens)
        row = (index % segment.tokens_per_frame) // columns
        character[:, start : start + segment.num_tokens] = batch.ids.lanes[:, segment.shot, row]
        shot[start : start + segment.num_tokens] = segment.shot
    return character, shot


@dataclass
class LaneRecord(AttentionRecord):
    """An :class:`AttentionRecord` that also counts, per routed video chunk, whether it shows the query's
    character or place."""

    character: torch.Tensor = field(default_factory=lambda: torch.zeros(0))
    token_shot: torch.Tensor = field(default_factory=lambda: torch.zeros(0))
    places: torch.Tensor = field(default_factory=lambda: torch.zeros(0))
    counts: dict[str, float] = field(default_factory=dict)

    def add_plan(self, plan: RoutingPlan, start: int, *, fixed: bool = False) -> None:
        super().add_plan(plan, start, fixed=fixed)
        chunks = plan.chunks
        video = chunks.kind == VIDEO
        chunk_shot = chunks.shot.long()
        token_chunk = chunks.token_chunk.long()
        b, c, shots = self.character.shape[0], chunks.num_chunks, self.places.shape[1]
        # shows[b, chunk, id]: a token of the chunk lies in the lane of character id (1 + id; 0 = none).
        shows = torch.zeros(b, c, SLOTS)
        shows.scatter_add_(
            1,
            token_chunk[None, :, None].expand(b, -1, SLOTS),
            torch.nn.functional.one_hot(self.character, SLOTS).float(),
        )
        tokens = shows * video[None, :, None]  # tokens of each chunk in each character's lane
        shows = tokens > 0
        shows[:, :, 0] = False
        # Uniform routing over the video chunks of other shots: expected share showing the character / place.
        per_shot = torch.stack([shows[:, chunk_shot == s].sum(1) for s in range(shots)], 2)  # (B, SLOTS, S)
        video_per_shot = torch.tensor([int((video & (chunk_shot == s)).sum()) for s in range(shots)])
        others = int(video.sum()) - video_per_shot  # (S,)
        char_base = (per_shot.sum(2, keepdim=True) - per_shot) / others  # (B, SLOTS, S)
        same_place = self.places[:, :, None] == self.places[:, None, :]  # (B, S, S)
        place_base = ((same_place * video_per_shot).sum(2) - video_per_shot) / others  # (B, S)

        query = self.token_shot >= 0
        q_shot = self.token_shot[query]  # (Q,)
        q_char = self.character[:, query]  # (B, Q)
        sel = plan.selected[:, :, start:][:, :, query[start:]].long()  # (B, H, Q, k)
        safe = sel.clamp_min(0)
        routed = (sel >= 0) & video[safe] & (chunk_shot[safe] != q_shot[None, None, :, None])
        n_routed = routed.sum(3).float()  # (B, H, Q)
        batch_index = torch.arange(b)[:, None, None, None]
        right = shows[batch_index, safe, q_char[:, None, :, None]] & routed
        has_char = (q_char > 0)[:, None, :].float()
        self._add_count("character", (right.sum(3) * has_char).sum(), (n_routed * has_char).sum())
        # The same counted in tokens: the share of routed video tokens that lie in the character's lane.
        lengths = torch.bincount(token_chunk, minlength=c).float()
        lane_tokens = (tokens[batch_index, safe, q_char[:, None, :, None]] * routed).sum(3)
        routed_tokens = (lengths[safe] * routed).sum(3)
        self._add_count("lane", (lane_tokens * has_char).sum(), (routed_tokens * has_char).sum())
        per_shot_tokens = torch.stack([tokens[:, chunk_shot == s].sum(1) for s in range(shots)], 2)
        video_tokens = torch.stack([(lengths * (video & (chunk_shot == s))).sum() for s in range(shots)])
        other_tokens = video_tokens.sum() - video_tokens
        lane_base = (per_shot_tokens.sum(2, keepdim=True) - per_shot_tokens) / other_tokens
        lane_expected = lane_base[torch.arange(b)[:, None], q_char, q_shot[None, :]]
        self._add_count(
            "lane_base",
            (routed_tokens * has_char * lane_expected[:, None]).sum(),
            (routed_tokens * has_char).sum(),
        )
        expected = char_base[torch.arange(b)[:, None], q_char, q_shot[None, :]]  # (B, Q)
        self._add_count(
            "character_base", (n_routed * has_char * expected[:, None]).sum(), (n_routed * has_char).sum()
        )
        routed_place = self.places[batch_index, chunk_shot[safe]] == self.places[:, q_shot][:, None, :, None]
        self._add_count("place", (routed_place & routed).sum(), n_routed.sum())
        self._add_count("place_base", (n_routed * place_base[:, q_shot][:, None]).sum(), n_routed.sum())

    def _add_count(self, name: str, hits: torch.Tensor | int, total: torch.Tensor | int) -> None:
        self.counts[name + "_hits"] = self.counts.get(name + "_hits", 0.0) + float(hits)
        self.counts[name + "_total"] = self.counts.get(name + "_total", 0.0) + float(total)

    def share(self, name: str) -> float:
        return self.counts[name + "_hits"] / max(1.0, self.counts[name + "_total"])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--routing", default="16:4,8:8", help="chunk_size:top_k pairs")
    parser.add_argument("--t", type=float, default=0.5, help="noise level of every shot")
    parser.add_argument("--batches", type=int, default=2, help="held-out batches of 8 scenes")
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    torch.set_num_threads(1)
    config = DataConfig(batch_size=8, patch_size=8)
    stream = WorldStream(config, seed=args.seed, split="eval")
    batches = [stream.batch(i) for i in range(args.batches)]
    pairs = [tuple(int(x) for x in pair.split(":")) for pair in args.routing.split(",")]
    print(f"joint forward at t = {args.t}, {args.batches * 8} held-out scenes (seed {args.seed})")
    print(
        "| checkpoint | chunk | top_k | FLOPs vs dense | character chunks | uniform | character tokens "
        "| uniform | place | uniform |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for path in args.checkpoints:
        model = load_model(path).eval()
        joint = model.default_spec(joint=True)
        for chunk_size, top_k in pairs:
            moc = replace(joint.moc, chunk_size=chunk_size, top_k=top_k, drop_off=0.0, drop_in=0.0)
            spec = AttentionSpec("moc", moc, joint.backend)
            record = LaneRecord()  # counts pool over the batches; the ids are set per batch
            for batch in batches:
                character, shot = token_ids(batch, batch.layout, config.width // config.patch_size)
                record.character, record.token_shot, record.places = character, shot, batch.ids.places
                noise = torch.randn(batch.frames.shape, generator=torch.Generator().manual_seed(args.seed))
                x_t = (1 - args.t) * batch.frames + args.t * noise
                t = torch.full(batch.ids.places.shape, args.t)
                with torch.no_grad():
                    model(x_t, t, batch.text, batch.layout, spec=spec, record=record, ids=batch.ids)
            print(
                f"| {path} | {chunk_size} | {top_k} | {record.flops_ratio:.2f} "
                f"| {record.share('character'):.2f} | {record.share('character_base'):.2f} "
                f"| {record.share('lane'):.2f} | {record.share('lane_base'):.2f} "
                f"| {record.share('place'):.2f} | {record.share('place_base'):.2f} |"
            )


if __name__ == "__main__":
    main()
