"""MoC attention processors for diffusers video transformers.

Each processor mirrors the stock processor of its model line by line up to the attention call (projections,
q/k normalisation, RoPE: the q/k/v are exactly what the stock processor would attend with), then runs
:func:`moc.moc_attention` instead of dense attention, then mirrors the stock output projection. Processors
are plain instances: their config, backend and layer name are fixed at construction, and the token grid of
the current call comes from the shared :class:`~moc.integrations.diffusers.api.MoCHandle` that a forward
pre-hook on the transformer fills in. No class-level mutable state.

This module imports diffusers; it is loaded only by :func:`~moc.integrations.diffusers.apply_moc`.

Shapes: B batch, S sequence (text + video), H heads, D head dim; diffusers' dispatcher uses BSHD, MoC uses
BHSD (``(B, H, L, D)``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from diffusers.models.embeddings import apply_rotary_emb as _diffusers_rotary
from diffusers.models.transformers.transformer_ltx import apply_rotary_emb as _ltx_rotary

from moc.attention.api import Backend, moc_attention
from moc.config import MoCConfig
from moc.layout import Layout
from moc.routing import PlanStats, route

if TYPE_CHECKING:
    from moc.integrations.diffusers.api import MoCHandle


class MoCAttnProcessor:
    """Base of the MoC processors: routing + sparse attention over one layer's q/k/v.

    Args:
        handle: the per-transformer state shared by all MoC processors of one model (token grid, shots).
        layer_name: the attention module this processor serves, e.g. ``"blocks.3.attn1"``.
        config: the MoC configuration of this layer.
        backend: the :func:`moc.moc_attention` backend (``"varlen"``: exact, forward and backward).
    """

    def __init__(self, handle: MoCHandle, layer_name: str, config: MoCConfig, backend: Backend) -> None:
        self.handle = handle
        self.layer_name = layer_name
        self.config = config
        self.backend = backend
        # diffusers writes these on every processor (set_attention_backend, enable_parallelism).
        self._attention_backend = None
        self._parallel_config = None

    def __repr__(self) -> str:
        name = type(self).__name__
        return f"{name}(layer={self.layer_name!r}, config={self.config}, backend={self.backend!r})"

    def _check_supported(self, attention_mask: torch.Tensor | None = None) -> None:
        if self._parallel_config is not None:
            raise NotImplementedError(
                f"{self.layer_name}: MoC processors do not support diffusers context parallelism "
                "(enable_parallelism); each device would route over a slice of the sequence"
            )
        if attention_mask is not None:
            raise NotImplementedError(
                f"{self.layer_name}: this model's self-attention got an attention_mask, which the stock "
                "model never passes here; MoC does not support it"
            )

    def _video_layout(self, total: int, text_tokens: int, text_first: bool) -> Layout:
        """The layout of ``total`` tokens: the video grid (split into shots) plus ``text_tokens`` text."""
        grid = self.handle.require_grid(self.layer_name)
        if total - text_tokens != grid.num_tokens:
            raise ValueError(
                f"{self.layer_name}: the latent grid {grid.frames}x{grid.height}x{grid.width} gives "
                f"{grid.num_tokens} video tokens but attention got {total - text_tokens} "
                f"({total} tokens, {text_tokens} of them text). Was the transformer called with extra "
                "tokens, or is its state from another call (e.g. two forwards before one backward under "
                "gradient checkpointing)?"
            )
        return Layout.joint(
            text_tokens, self.handle.shot_frames(grid), grid.tokens_per_frame, text_first=text_first
        )

    def _attend(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, layout: Layout, training: bool
    ) -> tuple[torch.Tensor, PlanStats | None]:
        """MoC attention on ``(B, H, L, D)`` q/k/v; also the plan's stats when the handle collects them."""
        plan = None
        if self.handle.collect_stats:
            plan = route(q, k, layout, self.config, training=training)
        out = moc_attention(q, k, v, layout, self.config, plan=plan, backend=self.backend, training=training)
        return out, (plan.stats() if plan is not None else None)


class WanMoCAttnProcessor(MoCAttnProcessor):
    """MoC for ``WanTransformer3DModel`` self-attention (``blocks.i.attn1``; video tokens only).

    Mirrors ``diffusers.models.transformers.transformer_wan.WanAttnProcessor`` for self-attention.
    """

    def __call__(
        self,
        attn: torch.nn.Module,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        rotary_emb: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """``hidden_states`` ``(B, S, H*D)`` video tokens -> ``(B, S, dim)``."""
        self._check_supported(attention_mask)
        if encoder_hidden_states is not None:
            raise ValueError(f"{self.layer_name}: MoC serves self-attention; got encoder_hidden_states")

        if getattr(attn, "fused_projections", False):
            query, key, value = attn.to_qkv(hidden_states).chunk(3, dim=-1)
        else:
            query, key, value = attn.to_q(hidden_states), attn.to_k(hidden_states), attn.to_v(hidden_states)

        query = attn.norm_q(query)
        key = attn.norm_k(key)

        query = query.unflatten(2, (attn.heads, -1))
        key = key.unflatten(2, (attn.heads, -1))
        value = value.unflatten(2, (attn.heads, -1))

        if rotary_emb is not None:
            query = _wan_rotary(query, *rotary_emb)
            key = _wan_rotary(key, *rotary_emb)

        layout = self._video_layout(query.shape[1], 0, text_first=True)
        out, stats = self._attend(
            query.transpose(1, 2), key.transpose(1, 2), value.transpose(1, 2), layout, attn.training
        )
        self.handle.record(self.layer_name, stats)
        hidden_states = out.transpose(1, 2).flatten(2, 3)
        hidden_states = hidden_states.type_as(query)

        hidden_states = attn.to_out[0](hidden_states)
        hidden_states = attn.to_out[1](hidden_states)
        return hidden_states


def _wan_rotary(
    hidden_states: torch.Tensor, freqs_cos: torch.Tensor, freqs_sin: torch.Tensor
) -> torch.Tensor:
    # Identical to the closure in WanAttnProcessor.__call__ (interleaved pairs, BSHD).
    x1, x2 = hidden_states.unflatten(-1, (-1, 2)).unbind(-1)
    cos = freqs_cos[..., 0::2]
    sin = freqs_sin[..., 1::2]
    out = torch.empty_like(hidden_states)
    out[..., 0::2] = x1 * cos - x2 * sin
    out[..., 1::2] = x1 * sin + x2 * cos
    return out.type_as(hidden_states)


class CogVideoXMoCAttnProcessor(MoCAttnProcessor):
    """MoC for ``CogVideoXTransformer3DModel`` joint attention (``transformer_blocks.i.attn1``; text first).

    Mirrors ``diffusers.models.attention_processor.CogVideoXAttnProcessor2_0``. The text is one global
    caption segment before the video.
    """

    def __call__(
        self,
        attn: torch.nn.Module,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        image_rotary_emb: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Video ``(B, S_v, dim)`` and text ``(B, S_t, dim)`` -> (video, text) outputs of the same shapes."""
        self._check_supported(attention_mask)
        text_seq_length = encoder_hidden_states.size(1)

        hidden_states = torch.cat([encoder_hidden_states, hidden_states], dim=1)

        batch_size, sequence_length, _ = hidden_states.shape

        query = attn.to_q(hidden_states)
        key = attn.to_k(hidden_states)
        value = attn.to_v(hidden_states)

        inner_dim = key.shape[-1]
        head_dim = inner_dim // attn.heads

        query = query.view(batch_size, -1, attn.heads, head_dim).transpose(1, 2)
        key = key.view(batch_size, -1, attn.heads, head_dim).transpose(1, 2)
        value = value.view(batch_size, -1, attn.heads, head_dim).transpose(1, 2)

        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)

        if image_rotary_emb is not None:
            query[:, :, text_seq_length:] = _diffusers_rotary(query[:, :, text_seq_length:], image_rotary_emb)
            if not attn.is_cross_attention:
                key[:, :, text_seq_length:] = _diffusers_rotary(key[:, :, text_seq_length:], image_rotary_emb)

        layout = self._video_layout(sequence_length, text_seq_length, text_first=True)
        hidden_states, stats = self._attend(query, key, value, layout, attn.training)
        self.handle.record(self.layer_name, stats)

        hidden_states = hidden_states.transpose(1, 2).reshape(batch_size, -1, attn.heads * head_dim)

        hidden_states = attn.to_out[0](hidden_states)
        hidden_states = attn.to_out[1](hidden_states)

        encoder_hidden_states, hidden_states = hidden_states.split(
            [text_seq_length, hidden_states.size(1) - text_seq_length], dim=1
        )
        return hidden_states, encoder_hidden_states


class HunyuanVideoMoCAttnProcessor(MoCAttnProcessor):
    """MoC for ``HunyuanVideoTransformer3DModel`` joint attention (dual- and single-stream; video first).

    Mirrors ``diffusers.models.transformers.transformer_hunyuan_video.HunyuanVideoAttnProcessor2_0``.

    Text padding. HunyuanVideo pads the prompt to a fixed length and passes a ``(B, 1, 1, S)`` boolean key
    mask that hides the padded text tokens (the last ones of the sequence). MoC handles it exactly: batch
    element ``b`` with ``n_b`` valid text tokens is attended over its first ``S_v + n_b`` tokens only, with
    the layout ``[video][text of n_b tokens]`` (elements with the same ``n_b`` share one call), so padded
    tokens get no attention weight and take no part in routing or chunk descriptors. The padded *query*
    rows, whose outputs the model never uses for video, are computed as the stock processor computes them:
    dense attention over the valid keys. A mask of any other form raises.
    """

    def __call__(
        self,
        attn: torch.nn.Module,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        image_rotary_emb: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Video ``(B, S_v, dim)`` and text ``(B, S_t, dim)`` -> (video, text) outputs.

        ``attention_mask``: ``(B, 1, 1, S_v + S_t)`` bool key mask, valid tokens a prefix (or ``None``).
        """
        self._check_supported()
        if encoder_hidden_states is None:
            raise ValueError(f"{self.layer_name}: MoC expected joint attention with encoder_hidden_states")
        text_seq_length = encoder_hidden_states.shape[1]

        if attn.add_q_proj is None:
            hidden_states = torch.cat([hidden_states, encoder_hidden_states], dim=1)

        # 1. QKV projections
        query = attn.to_q(hidden_states)
        key = attn.to_k(hidden_states)
        value = attn.to_v(hidden_states)

        query = query.unflatten(2, (attn.heads, -1))
        key = key.unflatten(2, (attn.heads, -1))
        value = value.unflatten(2, (attn.heads, -1))

        # 2. QK normalization
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)

        # 3. Rotational positional embeddings applied to latent stream
        if image_rotary_emb is not None:
            if attn.add_q_proj is None:
                query = torch.cat(
                    [
                        _diffusers_rotary(query[:, :-text_seq_length], image_rotary_emb, sequence_dim=1),
                        query[:, -text_seq_length:],
                    ],
                    dim=1,
                )
                key = torch.cat(
                    [
                        _diffusers_rotary(key[:, :-text_seq_length], image_rotary_emb, sequence_dim=1),
                        key[:, -text_seq_length:],
                    ],
                    dim=1,
                )
            else:
                query = _diffusers_rotary(query, image_rotary_emb, sequence_dim=1)
                key = _diffusers_rotary(key, image_rotary_emb, sequence_dim=1)

        # 4. Encoder condition QKV projection and normalization
        if attn.add_q_proj is not None:
            encoder_query = attn.add_q_proj(encoder_hidden_states)
            encoder_key = attn.add_k_proj(encoder_hidden_states)
            encoder_value = attn.add_v_proj(encoder_hidden_states)

            encoder_query = encoder_query.unflatten(2, (attn.heads, -1))
            encoder_key = encoder_key.unflatten(2, (attn.heads, -1))
            encoder_value = encoder_value.unflatten(2, (attn.heads, -1))

            if attn.norm_added_q is not None:
                encoder_query = attn.norm_added_q(encoder_query)
            if attn.norm_added_k is not None:
                encoder_key = attn.norm_added_k(encoder_key)

            query = torch.cat([query, encoder_query], dim=1)
            key = torch.cat([key, encoder_key], dim=1)
            value = torch.cat([value, encoder_value], dim=1)

        # 5. Attention (MoC over the valid prefix of each batch element)
        hidden_states = self._attend_padded(query, key, value, attention_mask, text_seq_length, attn.training)
        hidden_states = hidden_states.flatten(2, 3)
        hidden_states = hidden_states.to(query.dtype)

        # 6. Output projection
        hidden_states, encoder_hidden_states = (
            hidden_states[:, :-text_seq_length],
            hidden_states[:, -text_seq_length:],
        )

        if getattr(attn, "to_out", None) is not None:
            hidden_states = attn.to_out[0](hidden_states)
            hidden_states = attn.to_out[1](hidden_states)

        if getattr(attn, "to_add_out", None) is not None:
            encoder_hidden_states = attn.to_add_out(encoder_hidden_states)

        return hidden_states, encoder_hidden_states

    def _attend_padded(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        attention_mask: torch.Tensor | None,
        text_seq_length: int,
        training: bool,
    ) -> torch.Tensor:
        """BSHD q/k/v ``(B, S, H, D)`` with the ``[video][text + padding]`` order -> BSHD output."""
        batch, total = query.shape[:2]
        video_tokens = total - text_seq_length
        valid_text = self._valid_text_lengths(attention_mask, batch, total, video_tokens)
        q, k, v = (t.transpose(1, 2) for t in (query, key, value))  # (B, H, S, D)

        groups: dict[int, list[int]] = {}
        for index, n in enumerate(valid_text):
            groups.setdefault(n, []).append(index)
        pieces, order, stats = [], [], []
        for n, members in groups.items():
            rows = slice(None) if len(groups) == 1 else torch.tensor(members, device=q.device)
            qg, kg, vg = q[rows], k[rows], v[rows]
            valid = video_tokens + n
            layout = self._video_layout(valid, n, text_first=False)
            out, group_stats = self._attend(
                qg[:, :, :valid], kg[:, :, :valid], vg[:, :, :valid], layout, training
            )
            stats.append(group_stats)
            if valid < total:
                # Padded text queries: exactly what the stock masked SDPA gives them (all valid keys).
                pad = F.scaled_dot_product_attention(qg[:, :, valid:], kg[:, :, :valid], vg[:, :, :valid])
                out = torch.cat([out, pad], dim=2)
            pieces.append(out)
            order.extend(members)
        self.handle.record(self.layer_name, _merge_stats(stats))
        out = pieces[0] if len(pieces) == 1 else torch.cat(pieces, dim=0)
        if order != sorted(order):
            inverse = torch.empty(batch, dtype=torch.long)
            inverse[torch.tensor(order)] = torch.arange(batch)
            out = out[inverse.to(out.device)]
        return out.transpose(1, 2)

    def _valid_text_lengths(
        self, attention_mask: torch.Tensor | None, batch: int, total: int, video_tokens: int
    ) -> list[int]:
        """Valid text tokens per batch element, from the model's ``(B, 1, 1, S)`` boolean prefix key mask."""
        text = total - video_tokens
        if attention_mask is None:
            return [text] * batch
        if attention_mask.dtype != torch.bool or tuple(attention_mask.shape) != (batch, 1, 1, total):
            raise ValueError(
                f"{self.layer_name}: MoC expected HunyuanVideo's boolean (B, 1, 1, S) = "
                f"{(batch, 1, 1, total)} text padding mask, got {attention_mask.dtype} "
                f"{tuple(attention_mask.shape)}"
            )
        mask = attention_mask.reshape(batch, total)
        counts = mask.sum(dim=1)
        prefix = torch.arange(total, device=mask.device)[None, :] < counts[:, None]
        if not bool(torch.equal(mask, prefix)) or bool((counts < video_tokens).any()):
            raise ValueError(
                f"{self.layer_name}: MoC supports a text padding mask whose valid tokens are all video "
                "tokens followed by a prefix of the text tokens (what HunyuanVideoTransformer3DModel "
                "builds); got another pattern"
            )
        return [int(c) - video_tokens for c in counts.tolist()]


class LTXVideoMoCAttnProcessor(MoCAttnProcessor):
    """MoC for ``LTXVideoTransformer3DModel`` self-attention (``transformer_blocks.i.attn1``; video only).

    Mirrors ``diffusers.models.transformers.transformer_ltx.LTXVideoAttnProcessor`` for self-attention.
    """

    def __call__(
        self,
        attn: torch.nn.Module,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        image_rotary_emb: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``hidden_states`` ``(B, S, dim)`` video tokens -> ``(B, S, dim)``."""
        self._check_supported(attention_mask)
        if encoder_hidden_states is not None:
            raise ValueError(f"{self.layer_name}: MoC serves self-attention; got encoder_hidden_states")

        query = attn.to_q(hidden_states)
        key = attn.to_k(hidden_states)
        value = attn.to_v(hidden_states)

        query = attn.norm_q(query)
        key = attn.norm_k(key)

        if image_rotary_emb is not None:
            query = _ltx_rotary(query, image_rotary_emb)
            key = _ltx_rotary(key, image_rotary_emb)

        query = query.unflatten(2, (attn.heads, -1))
        key = key.unflatten(2, (attn.heads, -1))
        value = value.unflatten(2, (attn.heads, -1))

        layout = self._video_layout(query.shape[1], 0, text_first=True)
        out, stats = self._attend(
            query.transpose(1, 2), key.transpose(1, 2), value.transpose(1, 2), layout, attn.training
        )
        self.handle.record(self.layer_name, stats)
        hidden_states = out.transpose(1, 2).flatten(2, 3)
        hidden_states = hidden_states.to(query.dtype)

        hidden_states = attn.to_out[0](hidden_states)
        hidden_states = attn.to_out[1](hidden_states)
        return hidden_states


def _merge_stats(parts: list[PlanStats | None]) -> PlanStats | None:
    """One :class:`PlanStats` for several calls of one layer (sums; ratios recomputed)."""
    if not parts or parts[0] is None:
        return None
    if len(parts) == 1:
        return parts[0]
    pairs = sum(p.pairs for p in parts)
    dense_pairs = sum(p.dense_pairs for p in parts)
    return PlanStats(
        pairs=pairs,
        density=pairs / dense_pairs,
        sparsity=1.0 - pairs / dense_pairs,
        attention_flops=sum(p.attention_flops for p in parts),
        routing_flops=sum(p.routing_flops for p in parts),
        dense_pairs=dense_pairs,
        dense_attention_flops=sum(p.dense_attention_flops for p in parts),
    )


PROCESSORS: dict[str, type[MoCAttnProcessor]] = {
    "WanTransformer3DModel": WanMoCAttnProcessor,
    "CogVideoXTransformer3DModel": CogVideoXMoCAttnProcessor,
    "HunyuanVideoTransformer3DModel": HunyuanVideoMoCAttnProcessor,
    "LTXVideoTransformer3DModel": LTXVideoMoCAttnProcessor,
}
