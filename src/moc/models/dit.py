"""``MultiShotDiT``: a small multi-shot video diffusion transformer on MoC attention (LCT-style).

The packed sequence is the world's layout ``[global caption][caption 0][video 0][caption 1][video 1]...``:
text and video tokens attend jointly (MMDiT-style, one set of weights plus a token-type embedding).

* Video enters as pixel patches; the model predicts the clean frames (x0), which is what works when a patch
  vector (``p * p * 3``) is wider than the model (``docs/training.md``).
* With ``stem_width`` set, convolutions over each noisy frame (:class:`ConvStem`) add features that see 16x16
  pixels to each patch embedding.
* With ``decoder_width`` set, a pixel decoder refines the linear head's output from the token's features and
  its noisy pixels: a per-patch MLP (:class:`PixelDecoder`) or convolutions over each frame that read across
  patch borders (:class:`ConvPixelDecoder`, :class:`UNetPixelDecoder`; ``decoder_kind``). With
  ``refiner_width`` set, a :class:`UNetPixelDecoder` also refines what the ``mlp`` decoder wrote.
* With ``self_condition`` on, the model also reads its previous clean estimate of the frames
  (self-conditioning): samplers pass the last step's estimate.
* Every shot carries its own noise level ``t``; the timestep embedding plus the shot's pooled caption
  embedding condition that shot's tokens through adaLN-Zero (a caption token uses its shot's condition;
  the global caption uses ``t = 0``).
* Positions: 3D RoPE over (time, row, column) with each shot offset by ``shot_stride`` in time; captions
  share the time of their shot and carry a learned slot embedding for word order.
* With ``script_ids`` on, video tokens also get an embedding of the script's ids where they are: the shot's
  place and the character standing in their patch row (:class:`~moc.models.tokens.ScriptIds`). With
  ``look_codes``, the rows of the shot that introduces a character may also be told how it looks.
* With ``id_bias`` on, attention adds a learned per-head bonus to the logit of every pair of video tokens
  with the same character id, and of every pair from shots at the same place. It is exact in every attention
  mode and backend because it is a dot product: queries and keys get extra dimensions holding one-hot ids
  (the query's scaled by the head's gain), values get zeros there, and the softmax scale stays
  ``1 / sqrt(head_dim)``.
* Shot-by-shot generation runs only the new tokens against a :class:`KVCache` of the history's keys and
  values, which are computed once per shot and reused at every denoising step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from moc.layout import Layout
from moc.models.attention import AttentionRecord, AttentionSpec, attend
from moc.models.cleaner import FrameCleaner
from moc.models.config import ID_BIAS_INIT, ModelConfig, rope_pairs
from moc.models.patches import patchify, unpatchify
from moc.models.tokens import ScriptIds, TokenTable, token_table

PAD_ID = 0


@dataclass
class KVCache:
    """Keys and values (after norm and RoPE) of the first ``length`` tokens of a layout, per block.

    With ``model.id_bias`` they carry the id dimensions too (keys: the tokens' one-hot ids, values: zeros), so
    ``D`` is then ``head_dim + 2 * num_ids``.

    Attributes:
        keys, values: per block ``(B, H, length, D)`` tensors (empty lists before the first commit).
        length: tokens cached.
    """

    keys: list[torch.Tensor] = field(default_factory=list)
    values: list[torch.Tensor] = field(default_factory=list)
    length: int = 0


def timestep_embedding(t: torch.Tensor, dim: int, scale: float = 1000.0) -> torch.Tensor:
    """Sinusoidal embedding of noise levels ``t`` in [0, 1]: ``(...,)`` -> ``(..., dim)``."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    angles = (t.float() * scale)[..., None] * freqs
    return torch.cat([angles.cos(), angles.sin()], dim=-1)


def rope_tables(
    position: torch.Tensor, head_dim: int, theta: float, time_nope_pairs: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin ``(L, head_dim / 2)`` for 3D positions ``(L, 3)``; time gets the frequencies left over.

    The ``time_nope_pairs`` lowest time frequencies are not rotated at all: on those dimensions ``q . k``
    compares content at any distance in time, which retrieval across many shots needs.
    """
    sizes = rope_pairs(head_dim)
    if not 0 <= time_nope_pairs <= sizes[0]:
        raise ValueError(f"time_nope_pairs must lie in [0, {sizes[0]}] for head dim {head_dim}")
    angles = []
    for axis, n in enumerate(sizes):
        freqs = theta ** (-torch.arange(n, dtype=torch.float32) / max(1, n))
        if axis == 0 and time_nope_pairs:
            freqs[n - time_nope_pairs :] = 0.0
        angles.append(position[:, axis, None].float() * freqs)
    a = torch.cat(angles, dim=-1)
    return a.cos(), a.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale) + shift


@dataclass(frozen=True)
class Context:
    """What every block needs besides its input: the layout, attention spec and per-call options."""

    layout: Layout
    spec: AttentionSpec
    cos: torch.Tensor
    sin: torch.Tensor
    cond_index: torch.Tensor
    training: bool
    generator: torch.Generator | None
    record: AttentionRecord | None
    cache: KVCache | None
    commit: bool
    id_codes: torch.Tensor | None = None  # (B, N, 2 * num_ids) one-hot character and place ids (id_bias)


class Block(nn.Module):
    """adaLN-Zero transformer block with QK-RMSNorm, 3D RoPE and mode-dependent attention."""

    def __init__(self, config: ModelConfig, index: int) -> None:
        super().__init__()
        d, self.heads, self.index = config.width, config.heads, index
        self.norm1 = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.qkv = nn.Linear(d, 3 * d)
        self.q_norm = nn.RMSNorm(config.head_dim, eps=1e-6)
        self.k_norm = nn.RMSNorm(config.head_dim, eps=1e-6)
        self.proj = nn.Linear(d, d)
        self.norm2 = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        hidden = int(d * config.mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(d, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, d))
        self.ada = nn.Linear(d, 6 * d)
        nn.init.zeros_(self.ada.weight)
        nn.init.zeros_(self.ada.bias)
        if config.id_bias:
            # Row 0: same-character bonus per head; row 1: same-place bonus per head.
            self.id_gain = nn.Parameter(torch.full((2, config.heads), ID_BIAS_INIT))

    def forward(self, x: torch.Tensor, cond: torch.Tensor, ctx: Context) -> torch.Tensor:
        # Modulation per shot (S + 1 rows), gathered per token: the linear runs on S + 1 vectors, not L.
        mod = self.ada(F.silu(cond))[:, ctx.cond_index]
        shift1, scale1, gate1, shift2, scale2, gate2 = mod.chunk(6, dim=-1)
        b, n, d = x.shape
        qkv = self.qkv(modulate(self.norm1(x), shift1, scale1))
        q, k, v = qkv.view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        q = apply_rope(self.q_norm(q), ctx.cos, ctx.sin)
        k = apply_rope(self.k_norm(k), ctx.cos, ctx.sin)
        head_dim = q.shape[-1]
        scale = 1.0 / math.sqrt(head_dim)
        if ctx.id_codes is not None:
            q, k, v = self._with_id_codes(q, k, v, ctx.id_codes, scale)
        cache = ctx.cache
        if cache is not None and cache.length:
            k = torch.cat([cache.keys[self.index], k], dim=2)
            v = torch.cat([cache.values[self.index], v], dim=2)
        if cache is not None and ctx.commit:
            if len(cache.keys) <= self.index:
                cache.keys.append(k)
                cache.values.append(v)
            else:
                cache.keys[self.index], cache.values[self.index] = k, v
        out = attend(
            q,
            k,
            v,
            ctx.layout,
            ctx.spec,
            training=ctx.training,
            generator=ctx.generator,
            record=ctx.record,
            scale=scale,
        )[..., :head_dim]
        x = x + gate1 * self.proj(out.transpose(1, 2).reshape(b, n, d))
        return x + gate2 * self.mlp(modulate(self.norm2(x), shift2, scale2))

    def _with_id_codes(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, codes: torch.Tensor, scale: float
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Append the id dimensions: ``scale * q' . k' = scale * q . k + gain[h] * [same id]`` per id kind."""
        b, h, n, _ = q.shape
        per_kind = codes.shape[-1] // 2
        gain = self.id_gain.T.repeat_interleave(per_kind, dim=1)  # (H, 2 * num_ids)
        codes = codes[:, None].expand(b, h, n, -1)
        q = torch.cat([q, codes * (gain[None, :, None] / scale)], dim=-1)
        k = torch.cat([k, codes], dim=-1)
        v = F.pad(v, (0, codes.shape[-1]))
        return q, k, v


class PixelDecoder(nn.Module):
    """A per-patch MLP added to the linear head: ``(features, noisy patch) -> patch correction``.

    The linear head can only paint a patch as a combination of ``width`` learned patch images; the world's
    sprites and row-banded backgrounds land at every pixel offset within a patch, which that basis renders
    soft and with seams, however long the model trains (docs/training.md, stage 12). A small MLP
    decodes the features nonlinearly, and reading the noisy pixels lets it keep detail the features did not
    carry (as pixel-space decoders in DeCo and PixNerd do). Its output layer starts at zero.

    With ``self_condition`` it also reads the model's previous clean estimate of the patch, through a
    zero-started map into its hidden layer (so a decoder grown into it computes what it computed).

    Shapes: ``features (B, N, width)``, ``noisy`` and ``previous`` ``(B, N, patch_dim)`` ->
    ``(B, N, patch_dim)``.
    """

    def __init__(self, width: int, patch_dim: int, hidden: int, self_condition: bool = False) -> None:
        super().__init__()
        self.hidden = nn.Linear(width + patch_dim, hidden)
        self.out = nn.Linear(hidden, patch_dim)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        self.previous: nn.Linear | None = None
        if self_condition:
            self.previous = nn.Linear(patch_dim, hidden, bias=False)
            nn.init.zeros_(self.previous.weight)

    def forward(
        self, features: torch.Tensor, noisy: torch.Tensor, previous: torch.Tensor | None = None
    ) -> torch.Tensor:
        h = self.hidden(torch.cat([features, noisy], dim=-1))
        if self.previous is not None and previous is not None:
            h = h + self.previous(previous)
        return self.out(F.gelu(h))


class ConvPixelDecoder(nn.Module):
    """A small convolutional net over each frame that refines the linear head's frame.

    Per pixel it reads the noisy pixel, the head's clean estimate, the shot's noise level and ``codes``
    channels projected from the features of the token the pixel lies in; three 3x3 convolutions
    (receptive field 7x7 pixels, across patch borders) then write a correction. One set of weights serves
    every pixel, so the capacity goes into a shared local rule ("this pixel is glyph or ground, given the
    colours the features name and the noisy evidence") instead of a per-patch map. Its last layer starts
    at zero.

    Shapes: ``features (B, N, width)``, ``noisy`` and ``head`` ``(B, F, C, H, W)``, ``level (B, N)`` ->
    ``(B, F, C, H, W)``.
    """

    def __init__(self, width: int, channels: int, patch_size: int, hidden: int, codes: int = 8) -> None:
        super().__init__()
        self.codes, self.patch_size = codes, patch_size
        self.project = nn.Linear(width, codes * patch_size * patch_size)
        self.convs = nn.ModuleList(
            [
                nn.Conv2d(2 * channels + codes + 1, hidden, 3, padding=1),
                nn.Conv2d(hidden, hidden, 3, padding=1),
                nn.Conv2d(hidden, channels, 3, padding=1),
            ]
        )
        nn.init.zeros_(self.convs[-1].weight)
        nn.init.zeros_(self.convs[-1].bias)

    def forward(
        self,
        features: torch.Tensor,
        noisy: torch.Tensor,
        head: torch.Tensor,
        level: torch.Tensor,
        grid: tuple[int, int],
    ) -> torch.Tensor:
        b, f, c, h, w = noisy.shape
        p = self.patch_size
        per_token = torch.cat([self.project(features), level[..., None].expand(-1, -1, p * p)], dim=-1)
        pixels = unpatchify(per_token, f, self.codes + 1, grid, p)
        x = torch.cat([noisy, head, pixels], dim=2).reshape(b * f, -1, h, w)
        return self.refine(x).reshape(b, f, c, h, w)

    def refine(self, x: torch.Tensor) -> torch.Tensor:
        """``(frames, inputs, H, W)`` per-pixel inputs -> ``(frames, C, H, W)`` correction."""
        for conv in self.convs[:-1]:
            x = F.gelu(conv(x))
        return self.convs[-1](x)


class UNetPixelDecoder(ConvPixelDecoder):
    """:class:`ConvPixelDecoder` with a half-resolution path that sees a whole sprite at once.

    A full-resolution 3x3 convolution reads the same per-pixel inputs; a stride-2 convolution and two 3x3
    convolutions at half resolution (the second dilated by 2) widen the receptive field to 19x19 pixels,
    more than a sprite; their output, brought back to full resolution by a 1x1 convolution and nearest
    upsampling, joins the first layer's output before the last 3x3 convolution (zero-started). The point:
    at mid noise levels the evidence for a sprite's shape is spread over all its pixels, and a per-patch
    reading cannot add it up.
    """

    def __init__(self, width: int, channels: int, patch_size: int, hidden: int, codes: int = 8) -> None:
        super().__init__(width, channels, patch_size, hidden, codes)
        wide = 2 * hidden
        self.convs = nn.ModuleList(
            [
                nn.Conv2d(2 * channels + codes + 1, hidden, 3, padding=1),
                nn.Conv2d(hidden, wide, 3, stride=2, padding=1),
                nn.Conv2d(wide, wide, 3, padding=1),
                nn.Conv2d(wide, wide, 3, padding=2, dilation=2),
                nn.Conv2d(wide, hidden, 1),
                nn.Conv2d(hidden, channels, 3, padding=1),
            ]
        )
        nn.init.zeros_(self.convs[-1].weight)
        nn.init.zeros_(self.convs[-1].bias)

    def refine(self, x: torch.Tensor) -> torch.Tensor:
        first, down, mid, dilated, up, out = self.convs
        skip = F.gelu(first(x))
        y = F.gelu(dilated(F.gelu(mid(F.gelu(down(skip))))))
        y = F.interpolate(up(y), size=skip.shape[-2:], mode="nearest")
        return out(F.gelu(skip + y))


CONV_DECODERS = {"conv": ConvPixelDecoder, "unet": UNetPixelDecoder}


class InputGate(nn.Module):
    """Blends the clean estimate toward the noisy input, per pixel: ``estimate + g (passed - estimate)``.

    ``passed`` is the noisy frame rescaled to the frames' scale, ``x_t / (1 - t)`` (the divisor kept at 0.5 or
    more, where the gate has nothing to gain and ``t = 1`` would divide by zero): the estimate of a denoiser
    that changes nothing. ``g`` is one number per pixel, computed by two 3x3 convolutions over the noisy
    frame, the estimate and the shot's level, so it can follow what the input shows (a post, a horizon)
    and leave flat, noisy regions to the estimate. This is EDM's skip connection (``c_skip(t) x_t``, Karras
    et al. 2022) made per pixel and learned. Its last layer starts at zero, so ``g = 0`` at the start.

    Shapes: ``noisy`` and ``estimate`` ``(B, F, C, H, W)``, ``level (B, F)`` -> ``(B, F, C, H, W)``.
    """

    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        self.convs = nn.ModuleList(
            [nn.Conv2d(2 * channels + 1, hidden, 3, padding=1), nn.Conv2d(hidden, 1, 3, padding=1)]
        )
        nn.init.zeros_(self.convs[-1].weight)
        nn.init.zeros_(self.convs[-1].bias)

    def forward(self, noisy: torch.Tensor, estimate: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
        b, f, _, h, w = noisy.shape
        level = level[:, :, None, None, None]
        passed = noisy / (1 - level).clamp_min(0.5)
        x = torch.cat([noisy, estimate, level.expand(b, f, 1, h, w)], dim=2).reshape(b * f, -1, h, w)
        gate = self.convs[1](F.gelu(self.convs[0](x))).reshape(b, f, 1, h, w)
        return estimate + gate * (passed - estimate)


class ConvStem(nn.Module):
    """Convolutions over each noisy frame, projected per patch and added to the patch embedding.

    Per pixel it reads the noisy pixel and the shot's noise level; a 3x3, a 3x3 dilated by 2 and a 3x3
    convolution (receptive field 9x9 pixels) make ``hidden`` features, and a stride-``patch_size``
    convolution projects each patch's features to one token (zero-started). A token then sees 16x16 pixels,
    a whole sprite: the trunk gets local evidence for a shape (edges, corners) pooled before the noise of
    each pixel is mixed into a linear embedding. Early convolutions are a known remedy for what a patch
    embedding misses (Xiao et al. 2021, "Early convolutions help transformers see better").

    Shapes: ``frames (B, F, C, H, W)``, ``level (B, F)`` -> ``(B, F * H/p * W/p, width)``, in
    :func:`patchify` order.
    """

    def __init__(self, width: int, channels: int, patch_size: int, hidden: int) -> None:
        super().__init__()
        self.convs = nn.ModuleList(
            [
                nn.Conv2d(channels + 1, hidden, 3, padding=1),
                nn.Conv2d(hidden, hidden, 3, padding=2, dilation=2),
                nn.Conv2d(hidden, hidden, 3, padding=1),
            ]
        )
        self.project = nn.Conv2d(hidden, width, patch_size, stride=patch_size)
        nn.init.zeros_(self.project.weight)
        nn.init.zeros_(self.project.bias)

    def forward(self, frames: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
        b, f, c, h, w = frames.shape
        x = torch.cat([frames, level[:, :, None, None, None].expand(b, f, 1, h, w)], dim=2)
        x = x.reshape(b * f, c + 1, h, w)
        for conv in self.convs:
            x = F.gelu(conv(x))
        x = self.project(x)  # (B * F, width, H/p, W/p)
        return x.permute(0, 2, 3, 1).reshape(b, -1, x.shape[1])


class MultiShotDiT(nn.Module):
    """A multi-shot video DiT whose self-attention is MoC over the packed text + video sequence.

    Args:
        config: the architecture (:class:`ModelConfig`).

    Example:
        >>> from moc.world import DataConfig, WorldStream
        >>> batch = next(iter(WorldStream(DataConfig(batch_size=2, patch_size=8), seed=0)))
        >>> model = MultiShotDiT(ModelConfig())
        >>> t = torch.rand(2, batch.num_shots)
        >>> model(batch.frames, t, batch.text, batch.layout).shape == batch.frames.shape
        True
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        d = config.width
        self.patch_in = nn.Linear(config.patch_dim, d)
        self.text_embed = nn.Embedding(config.vocab_size, d)
        self.text_slot = nn.Embedding(config.max_caption_tokens, d)
        self.token_type = nn.Embedding(2, d)
        self.time_mlp = nn.Sequential(nn.Linear(256, d), nn.SiLU(), nn.Linear(d, d))
        self.caption_mlp = nn.Sequential(nn.Linear(d, d), nn.SiLU(), nn.Linear(d, d))
        if config.script_ids:
            # Zero at the start: a model grown from a checkpoint without ids computes the same function.
            self.place_id = nn.Embedding(config.num_ids, d)
            self.character_id = nn.Embedding(config.num_ids + 1, d, padding_idx=0)
            nn.init.zeros_(self.place_id.weight)
            nn.init.zeros_(self.character_id.weight)
        self.look_in: nn.Embedding | None = None
        if config.look_codes:
            self.look_in = nn.Embedding(config.look_codes + 1, d, padding_idx=0)
            nn.init.zeros_(self.look_in.weight)
        self.paint_in: nn.Linear | None = None
        if config.paint_features:
            self.paint_in = nn.Linear(config.paint_features, d, bias=False)  # zero rows: nothing told
            nn.init.zeros_(self.paint_in.weight)
        self.scenery_in: nn.Linear | None = None
        if config.scenery_features:
            self.scenery_in = nn.Linear(config.scenery_features, d, bias=False)  # zero rows: nothing told
            nn.init.zeros_(self.scenery_in.weight)
        self.blocks = nn.ModuleList(Block(config, i) for i in range(config.depth))
        self.final_norm = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.final_ada = nn.Linear(d, 2 * d)
        self.out = nn.Linear(d, config.patch_dim)
        for module in (self.final_ada, self.out):
            nn.init.zeros_(module.weight)
            nn.init.zeros_(module.bias)
        self.decoder: nn.Module | None = None
        if config.decoder_width and config.decoder_kind == "mlp":
            self.decoder = PixelDecoder(d, config.patch_dim, config.decoder_width, config.self_condition)
        elif config.decoder_width:
            decoder = CONV_DECODERS[config.decoder_kind]
            self.decoder = decoder(d, config.channels, config.patch_size, config.decoder_width)
        self.refiner = (
            UNetPixelDecoder(d, config.channels, config.patch_size, config.refiner_width)
            if config.refiner_width
            else None
        )
        self.input_gate = InputGate(config.channels, config.input_gate) if config.input_gate else None
        self.cleaner = None
        if config.cleaner_width:
            self.cleaner = FrameCleaner(
                config.channels,
                config.cleaner_width,
                codes=config.cleaner_codes,
                features=config.width,
                patch_size=config.patch_size,
            )
        self.stem = (
            ConvStem(d, config.channels, config.patch_size, config.stem_width) if config.stem_width else None
        )
        self.previous_in: nn.Linear | None = None
        if config.self_condition:
            # No bias: reading no estimate (None) is then exactly reading zeros.
            self.previous_in = nn.Linear(config.patch_dim, d, bias=False)
            nn.init.zeros_(self.previous_in.weight)
        self.shape_head = nn.Linear(d, config.shape_classes) if config.shape_classes else None
        nn.init.normal_(self.text_embed.weight, std=0.02)
        nn.init.normal_(self.text_slot.weight, std=0.02)
        nn.init.normal_(self.token_type.weight, std=0.02)

    def default_spec(self, *, joint: bool = False) -> AttentionSpec:
        """The attention spec of the config (mode, MoC config, backend).

        Args:
            joint: the spec for sequences whose shots are all noisy (joint generation): routing causality
                then follows ``config.joint_causal`` when it is set.
        """
        c = self.config
        return AttentionSpec(c.attention, c.joint_routing(c.moc) if joint else c.moc, c.backend)

    @property
    def script_id_parameters(self) -> tuple[str, ...]:
        """Names of the id embeddings' weights and the id-bias gains (empty without ``script_ids``)."""
        names = ("place_id.weight", "character_id.weight") if self.config.script_ids else ()
        return names + self.id_bias_parameters

    @property
    def head_parameters(self) -> tuple[str, ...]:
        """Names of the weights after the last block: final adaLN, linear head, pixel decoder, refiner and
        input gate."""
        return tuple(
            n
            for n, _ in self.named_parameters()
            if n.split(".")[0] in ("final_ada", "out", "decoder", "refiner", "input_gate")
        )

    def _part_parameters(self, part: str) -> tuple[str, ...]:
        """Names of the weights of the optional submodule ``part`` (empty where the model has none)."""
        module = getattr(self, part)
        return () if module is None else tuple(f"{part}.{name}" for name, _ in module.named_parameters())

    @property
    def decoder_parameters(self) -> tuple[str, ...]:
        """Names of the pixel decoder's weights (empty without ``decoder_width``)."""
        return self._part_parameters("decoder")

    @property
    def refiner_parameters(self) -> tuple[str, ...]:
        """Names of the frame refiner's weights (empty without ``refiner_width``)."""
        return self._part_parameters("refiner")

    @property
    def input_gate_parameters(self) -> tuple[str, ...]:
        """Names of the input gate's weights (empty without ``input_gate``)."""
        return self._part_parameters("input_gate")

    @property
    def cleaner_parameters(self) -> tuple[str, ...]:
        """Names of the frame cleaner's weights (empty without ``cleaner_width``)."""
        return self._part_parameters("cleaner")

    @property
    def stem_parameters(self) -> tuple[str, ...]:
        """Names of the convolutional stem's weights (empty without ``stem_width``)."""
        return self._part_parameters("stem")

    @property
    def self_condition_parameters(self) -> tuple[str, ...]:
        """Names of the weights that read the previous estimate (empty without ``self_condition``)."""
        return tuple(
            n for n, _ in self.named_parameters() if n.startswith(("previous_in.", "decoder.previous."))
        )

    @property
    def shape_head_parameters(self) -> tuple[str, ...]:
        """Names of the auxiliary shape head's weights (empty without ``shape_classes``)."""
        return self._part_parameters("shape_head")

    @property
    def look_parameters(self) -> tuple[str, ...]:
        """Names of the told-look embedding's weights (empty without ``look_codes``)."""
        return self._part_parameters("look_in")

    @property
    def paint_parameters(self) -> tuple[str, ...]:
        """Names of the told-paint map's weights (empty without ``paint_features``)."""
        return self._part_parameters("paint_in")

    @property
    def scenery_parameters(self) -> tuple[str, ...]:
        """Names of the told-scenery map's weights (empty without ``scenery_features``)."""
        return self._part_parameters("scenery_in")

    @property
    def id_bias_parameters(self) -> tuple[str, ...]:
        """Names of the per-block id-bias gains (empty without ``id_bias``)."""
        return tuple(f"blocks.{i}.id_gain" for i in range(self.config.depth)) if self.config.id_bias else ()

    def clean(self, frames: torch.Tensor, features: torch.Tensor | None = None) -> torch.Tensor:
        """A sampler's final estimate run through the frame cleaner (``model.cleaner_width``), clamped to
        [-1, 1]; without a cleaner, ``frames`` unchanged.

        Shapes: ``frames (B, F, C, H, W)``, ``features (B, F * H/p * W/p, width)`` (the trunk's final
        features of those frames, :meth:`forward`'s ``return_features``; read only with ``cleaner_codes``)
        -> ``(B, F, C, H, W)``.
        """
        if self.cleaner is None:
            return frames
        b, f = frames.shape[:2]
        return self.cleaner(*self.cleaner_inputs(frames, features)).unflatten(0, (b, f)).clamp(-1, 1)

    def cleaner_inputs(
        self, frames: torch.Tensor, features: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """What the frame cleaner reads, frame by frame: ``(B * F, C, H, W)`` frames and, with
        ``cleaner_codes``, ``(B * F, H/p * W/p, width)`` features (else ``None``)."""
        b, f = frames.shape[:2]
        if not self.config.cleaner_codes:
            return frames.flatten(0, 1), None
        if features is None or features.dim() != 3 or features.shape[0] != b or features.shape[1] % f:
            got = None if features is None else tuple(features.shape)
            raise ValueError(
                f"model.cleaner_codes: the cleaner reads the trunk's features (B, F * tokens, width) of "
                f"{b} x {f} frames, got {got}"
            )
        return frames.flatten(0, 1), features.unflatten(1, (f, -1)).flatten(0, 1)

    def table(self, layout: Layout, frame_size: tuple[int, int]) -> TokenTable:
        p = self.config.patch_size
        h, w = frame_size
        if h % p or w % p:
            raise ValueError(f"frames of {h}x{w} pixels do not split into {p}-pixel patches")
        return token_table(layout, self.config.shot_stride, (h // p, w // p))

    def forward(
        self,
        frames: torch.Tensor,
        t: torch.Tensor,
        text: torch.Tensor,
        layout: Layout,
        *,
        spec: AttentionSpec | None = None,
        cache: KVCache | None = None,
        commit: bool = False,
        generator: torch.Generator | None = None,
        record: AttentionRecord | None = None,
        ids: ScriptIds | None = None,
        previous: torch.Tensor | None = None,
        return_features: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Predict the clean frames of the tokens after ``cache.length`` (all tokens without a cache).

        Args:
            frames: ``(B, F, C, H, W)`` noisy frames of the video tokens being run, shot after shot.
            t: ``(B, S)`` noise level of every shot of ``layout`` (1 = pure noise, 0 = clean); entries of
                cached shots are ignored.
            text: ``(B, T)`` caption token ids of the text tokens being run, in layout order.
            layout: the layout of the whole sequence (cached history included).
            spec: attention mode and MoC config (default: the model config's).
            cache: history keys/values; the run covers tokens ``cache.length .. len(layout) - 1``.
            commit: store the run's keys/values in ``cache`` (after the run ``cache.length == len(layout)``).
            generator: random generator of drop-off / drop-in in training mode.
            record: accumulates attention cost and routing hits.
            ids: the script's ids of every shot of ``layout`` (required with ``script_ids``, ignored
                without; cached shots' entries are ignored). What they tell is read by models made to read it
                (``looks`` with ``look_codes``, ``paint`` with ``paint_features``, ``scenery`` with
                ``scenery_features``) and ignored by others; ``ids.told(False)`` tells a model nothing.
            previous: ``(B, F, C, H, W)`` the model's previous clean estimate of ``frames`` (only for models
                with ``self_condition``; ``None`` reads zeros, "no estimate yet").
            return_features: also return the video tokens' final features (what the pixel decoder and the
                shape head read).

        Returns:
            ``(B, F, C, H, W)`` predicted clean frames; with ``return_features`` also ``(B, F * H/p * W/p,
            width)`` features, in :func:`patchify` order.
        """
        c = self.config
        if frames.dim() != 5 or frames.shape[2] != c.channels:
            raise ValueError(f"frames must be (B, F, {c.channels}, H, W), got {tuple(frames.shape)}")
        b, num_frames, _, height, width = frames.shape
        table = self.table(layout, (height, width))
        start = 0 if cache is None else cache.length
        if start >= table.num_tokens:
            raise ValueError(f"the cache already holds all {table.num_tokens} tokens of the layout")
        is_video = table.is_video[start:]
        shot = table.shot[start:]
        tokens_per_frame = table.grid[0] * table.grid[1]
        n_video = int(is_video.sum())
        if n_video != num_frames * tokens_per_frame:
            raise ValueError(
                f"layout has {n_video // tokens_per_frame} frames to run but frames has {num_frames}"
            )
        if text.dim() != 2 or text.shape != (b, int((~is_video).sum())):
            raise ValueError(
                f"text must be (B, T) = ({b}, {int((~is_video).sum())}), got {tuple(text.shape)}"
            )
        num_shots = len(layout.shots)
        if t.shape != (b, num_shots):
            raise ValueError(
                f"t must be (B, S) = ({b}, {num_shots}): one noise level per shot, got {tuple(t.shape)}"
            )
        if text.numel() and (int(text.max()) >= c.vocab_size or int(text.min()) < 0):
            raise ValueError(
                f"text ids must lie in [0, {c.vocab_size}), got {int(text.min())}..{int(text.max())}"
            )

        if c.script_ids:
            self._check_ids(ids, b, num_shots, table.grid[0])
        if previous is not None and not c.self_condition:
            raise ValueError("previous is for models with model.self_condition; this model has it off")
        if previous is not None and previous.shape != frames.shape:
            raise ValueError(
                f"previous must have the shape of frames {tuple(frames.shape)}, got {tuple(previous.shape)}"
            )

        d = c.width
        device = frames.device
        x = frames.new_empty(b, is_video.numel(), d)
        patches = patchify(frames, c.patch_size)
        video_shot = shot[is_video].to(device)
        frame_t = t[:, video_shot[::tokens_per_frame]]  # (B, F): each frame's shot level
        embedded = self.patch_in(patches)
        previous_patches = None if previous is None else patchify(previous, c.patch_size)
        if self.previous_in is not None and previous_patches is not None:
            embedded = embedded + self.previous_in(previous_patches)
        if self.stem is not None:
            embedded = embedded + self.stem(frames, frame_t)
        x[:, is_video] = embedded
        slots = table.text_slot[start:][~is_video].clamp_max(c.max_caption_tokens - 1).to(device)
        words = self.text_embed(text)
        x[:, ~is_video] = words + self.text_slot(slots)
        x = x + self.token_type(is_video.long().to(device))
        id_codes = None
        if c.script_ids:
            assert ids is not None
            ids = ids.to(device)
            rows = table.position[start:][is_video, 1].to(device)
            place = ids.places[:, video_shot]  # (B, N_video)
            character = ids.lanes[:, video_shot, rows]
            x[:, is_video] += self.place_id(place) + self.character_id(character)
            if self.look_in is not None and ids.looks is not None:
                x[:, is_video] += self.look_in(ids.looks[:, video_shot, rows])
            if self.paint_in is not None and ids.paint is not None:
                x[:, is_video] += self.paint_in(ids.paint[:, video_shot, rows].to(x.dtype))
            if self.scenery_in is not None and ids.scenery is not None:
                x[:, is_video] += self.scenery_in(ids.scenery[:, video_shot, rows].to(x.dtype))
            if c.id_bias:
                id_codes = self._id_codes(place, character, is_video.to(device), x.dtype)

        # Condition per shot (index 0: the global caption, clean): noise level + pooled caption.
        cond_index = (shot + 1).to(device)
        valid = (text != PAD_ID).to(x.dtype)
        text_cond = cond_index[~is_video]
        pooled = x.new_zeros(b, num_shots + 1, d).index_add_(1, text_cond, words * valid[..., None])
        count = x.new_zeros(b, num_shots + 1).index_add_(1, text_cond, valid)
        pooled = pooled / count.clamp_min(1)[..., None]
        t_all = torch.cat([t.new_zeros(b, 1), t], dim=1)
        cond = self.time_mlp(timestep_embedding(t_all, 256).to(x.dtype)) + self.caption_mlp(pooled)

        cos, sin = rope_tables(table.position[start:], c.head_dim, c.rope_theta, c.time_nope_pairs)
        ctx = Context(
            layout=layout,
            spec=spec or self.default_spec(),
            cos=cos.to(device, x.dtype),
            sin=sin.to(device, x.dtype),
            cond_index=cond_index,
            training=self.training,
            generator=generator,
            record=record,
            cache=cache,
            commit=commit,
            id_codes=id_codes,
        )
        for block in self.blocks:
            x = block(x, cond, ctx)
        if cache is not None and commit:
            cache.length = table.num_tokens
        shift, scale = self.final_ada(F.silu(cond))[:, cond_index].chunk(2, dim=-1)
        features = modulate(self.final_norm(x), shift, scale)[:, is_video.to(device)]
        y = self.out(features)
        if isinstance(self.decoder, PixelDecoder):
            y = y + self.decoder(features, patches, previous_patches)
        out = unpatchify(y, num_frames, c.channels, table.grid, c.patch_size)
        for refiner in (self.decoder, self.refiner):
            if isinstance(refiner, ConvPixelDecoder):
                out = out + refiner(features, frames, out, t[:, video_shot], table.grid)
        if self.input_gate is not None:
            out = self.input_gate(frames, out, frame_t)
        return (out, features) if return_features else out

    def _check_ids(self, ids: ScriptIds | None, batch: int, shots: int, rows: int) -> None:
        if ids is None:
            raise ValueError("this model reads the script's ids (model.script_ids); pass ids=ScriptIds(...)")
        if ids.places.shape != (batch, shots) or ids.lanes.shape != (batch, shots, rows):
            raise ValueError(
                f"ids must be places (B, S) = ({batch}, {shots}) and lanes (B, S, R) = ({batch}, {shots}, "
                f"{rows}), got {tuple(ids.places.shape)} and {tuple(ids.lanes.shape)}"
            )
        n = self.config.num_ids
        checks = [("places", ids.places, n), ("lanes", ids.lanes, n + 1)]
        if self.look_in is not None and ids.looks is not None:
            checks.append(("looks", ids.looks, self.config.look_codes + 1))
        for name, told, width in (
            ("paint", ids.paint, self.config.paint_features),
            ("scenery", ids.scenery, self.config.scenery_features),
        ):
            if width and told is not None and told.shape[-1] != width:
                raise ValueError(
                    f"ids.{name} must have {width} features (model.{name}_features), got {told.shape[-1]}"
                )
        for name, value, high in checks:
            if value.numel() and (int(value.min()) < 0 or int(value.max()) >= high):
                raise ValueError(
                    f"ids.{name} must lie in [0, {high}), got {int(value.min())}..{int(value.max())}"
                )

    def _id_codes(
        self, place: torch.Tensor, character: torch.Tensor, is_video: torch.Tensor, dtype: torch.dtype
    ) -> torch.Tensor:
        """``(B, N, 2 * num_ids)``: one-hot character id (zero where no character stands) and one-hot place
        id of the run's ``N`` tokens, from the ``(B, N_video)`` ids of its video tokens; zero for text
        tokens, which get no id bias."""
        n = self.config.num_ids
        codes = torch.zeros(place.shape[0], is_video.numel(), 2 * n, dtype=dtype, device=is_video.device)
        one_hot = torch.cat([F.one_hot(character, n + 1)[..., 1:], F.one_hot(place, n)], dim=-1)
        codes[:, is_video] = one_hot.to(dtype)
        return codes
