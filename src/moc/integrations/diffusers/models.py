"""What MoC needs to know about each supported diffusers transformer.

For every model family a :class:`ModelSpec` says which attention modules are self-attention over video
tokens (in execution order), which stock processor they carry, where the text sits in the attention
sequence, and how to read the latent token grid from the transformer's real input. Nothing here imports
diffusers at module import time; classes are resolved by name when a spec is used.

Token order: all supported models flatten the patchified latent frame-major (``f * H' * W' + h * W' + w``),
which is exactly the order of a :class:`moc.VideoSegment`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

TextPlacement = Literal["none", "first", "last"]


@dataclass(frozen=True)
class TokenGrid:
    """The patchified latent grid of one transformer call: ``frames x height x width`` video tokens.

    Attributes:
        frames: latent frames after temporal patching (``F // p_t``).
        height: token rows per frame (``H // p_h``).
        width: token columns per frame (``W // p_w``).
    """

    frames: int
    height: int
    width: int

    @property
    def tokens_per_frame(self) -> int:
        return self.height * self.width

    @property
    def num_tokens(self) -> int:
        return self.frames * self.tokens_per_frame


@dataclass(frozen=True)
class ModelSpec:
    """How MoC plugs into one diffusers transformer class.

    Attributes:
        class_name: the transformer class, an attribute of the top-level ``diffusers`` package.
        attention_paths: ``(block list, attention attribute)`` pairs, in execution order; every module
            ``transformer.<block list>[i].<attention attribute>`` is a self-attention layer MoC may replace.
        processor_module: the module holding the stock processor class.
        stock_processor: the stock processor class name those modules carry.
        text: where text tokens sit in the self-attention sequence (``"none"``: video only).
        read_grid: ``(transformer, bound forward arguments) -> TokenGrid``.
    """

    class_name: str
    attention_paths: tuple[tuple[str, str], ...]
    processor_module: str
    stock_processor: str
    text: TextPlacement
    read_grid: Callable[[nn.Module, dict[str, Any]], TokenGrid]

    def transformer_class(self) -> type:
        import diffusers

        return getattr(diffusers, self.class_name)

    def stock_processor_class(self) -> type:
        import importlib

        return getattr(importlib.import_module(self.processor_module), self.stock_processor)

    def attention_modules(self, transformer: nn.Module) -> list[tuple[str, nn.Module]]:
        """``(name, module)`` of every self-attention layer, in execution order."""
        found = []
        for blocks_name, attn_name in self.attention_paths:
            blocks = getattr(transformer, blocks_name)
            for index, block in enumerate(blocks):
                found.append((f"{blocks_name}.{index}.{attn_name}", getattr(block, attn_name)))
        return found

    def bind(self, transformer: nn.Module, args: tuple, kwargs: dict[str, Any]) -> dict[str, Any]:
        """The forward arguments by name, however the caller passed them."""
        signature = inspect.signature(transformer.forward)
        try:
            bound = signature.bind_partial(*args, **kwargs)
        except TypeError as error:
            raise TypeError(f"{self.class_name}.forward got unexpected arguments: {error}") from None
        return dict(bound.arguments)


def _tensor(arguments: dict[str, Any], name: str, rank: int, model: str) -> torch.Tensor:
    value = arguments.get(name)
    if not isinstance(value, torch.Tensor) or value.dim() != rank:
        shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
        raise ValueError(f"MoC expected {model}.forward({name}=...) to be a rank-{rank} tensor, got {shape}")
    return value


def _grid(frames: int, height: int, width: int, model: str) -> TokenGrid:
    if min(frames, height, width) <= 0:
        raise ValueError(f"{model}: the latent token grid {(frames, height, width)} is empty")
    return TokenGrid(int(frames), int(height), int(width))


def _wan_grid(transformer: nn.Module, arguments: dict[str, Any]) -> TokenGrid:
    # hidden_states (B, C, F, H, W); Conv3d patch embedding with kernel = stride = patch_size.
    _, _, f, h, w = _tensor(arguments, "hidden_states", 5, "WanTransformer3DModel").shape
    p_t, p_h, p_w = transformer.config.patch_size
    return _grid(f // p_t, h // p_h, w // p_w, "WanTransformer3DModel")


def _cogvideox_grid(transformer: nn.Module, arguments: dict[str, Any]) -> TokenGrid:
    # hidden_states (B, F, C, H, W): frames first. CogVideoX 1.0 has no temporal patch (patch_size_t None).
    _, f, _, h, w = _tensor(arguments, "hidden_states", 5, "CogVideoXTransformer3DModel").shape
    p, p_t = transformer.config.patch_size, transformer.config.patch_size_t
    return _grid(f if p_t is None else f // p_t, h // p, w // p, "CogVideoXTransformer3DModel")


def _hunyuan_grid(transformer: nn.Module, arguments: dict[str, Any]) -> TokenGrid:
    # hidden_states (B, C, F, H, W); Conv3d patch embedding (p_t, p, p).
    _, _, f, h, w = _tensor(arguments, "hidden_states", 5, "HunyuanVideoTransformer3DModel").shape
    p, p_t = transformer.config.patch_size, transformer.config.patch_size_t
    return _grid(f // p_t, h // p, w // p, "HunyuanVideoTransformer3DModel")


def _ltx_grid(transformer: nn.Module, arguments: dict[str, Any]) -> TokenGrid:
    # hidden_states are already packed (B, L, C); the model's RoPE builds one position per token from
    # (num_frames, height, width), so that is the token grid.
    _tensor(arguments, "hidden_states", 3, "LTXVideoTransformer3DModel")
    sizes = [arguments.get(name) for name in ("num_frames", "height", "width")]
    if arguments.get("video_coords") is not None or any(s is None for s in sizes):
        raise ValueError(
            "MoC reads the LTX-Video token grid from forward(num_frames=, height=, width=); calls with "
            "video_coords (conditioning pipelines) or without those sizes are not supported"
        )
    return _grid(*(int(s) for s in sizes), "LTXVideoTransformer3DModel")


SPECS: tuple[ModelSpec, ...] = (
    ModelSpec(
        class_name="WanTransformer3DModel",
        attention_paths=(("blocks", "attn1"),),
        processor_module="diffusers.models.transformers.transformer_wan",
        stock_processor="WanAttnProcessor",
        text="none",
        read_grid=_wan_grid,
    ),
    ModelSpec(
        class_name="CogVideoXTransformer3DModel",
        attention_paths=(("transformer_blocks", "attn1"),),
        processor_module="diffusers.models.attention_processor",
        stock_processor="CogVideoXAttnProcessor2_0",
        text="first",
        read_grid=_cogvideox_grid,
    ),
    ModelSpec(
        class_name="HunyuanVideoTransformer3DModel",
        attention_paths=(("transformer_blocks", "attn"), ("single_transformer_blocks", "attn")),
        processor_module="diffusers.models.transformers.transformer_hunyuan_video",
        stock_processor="HunyuanVideoAttnProcessor2_0",
        text="last",
        read_grid=_hunyuan_grid,
    ),
    ModelSpec(
        class_name="LTXVideoTransformer3DModel",
        attention_paths=(("transformer_blocks", "attn1"),),
        processor_module="diffusers.models.transformers.transformer_ltx",
        stock_processor="LTXVideoAttnProcessor",
        text="none",
        read_grid=_ltx_grid,
    ),
)

SUPPORTED_MODELS: tuple[str, ...] = tuple(spec.class_name for spec in SPECS)


def spec_for(transformer: object) -> ModelSpec:
    """The spec of ``transformer``'s class (exact match); a ``TypeError`` naming what is supported if none."""
    import diffusers

    for spec in SPECS:
        cls = getattr(diffusers, spec.class_name, None)
        if cls is not None and type(transformer) is cls:
            return spec
    hint = ""
    if hasattr(transformer, "transformer") and isinstance(transformer.transformer, nn.Module):
        hint = " (this looks like a pipeline: pass pipe.transformer)"
    elif type(transformer).__name__ == "OptimizedModule":
        hint = " (this is a torch.compile wrapper: apply MoC before torch.compile)"
    raise TypeError(
        f"apply_moc does not support {type(transformer).__module__}.{type(transformer).__name__}{hint}; "
        f"supported transformers: {', '.join(SUPPORTED_MODELS)}"
    )
