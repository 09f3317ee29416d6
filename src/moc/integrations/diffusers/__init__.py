"""MoC attention for diffusers video transformers, in two lines and with no patched ``forward``.

Example:
    >>> from moc.integrations.diffusers import apply_moc
    >>> apply_moc(pipe.transformer)  # the paper's single-shot setting: chunk = latent frame, top_k = 3
    >>> video = pipe(prompt, ...).frames[0]

Supported: ``WanTransformer3DModel`` (Wan 2.1/2.2; ``attn1`` only, text enters through ``attn2``),
``CogVideoXTransformer3DModel`` (joint attention, text first), ``HunyuanVideoTransformer3DModel`` (joint
attention, video first, padded text masked exactly) and ``LTXVideoTransformer3DModel`` (``attn1`` only).
diffusers is imported only when :func:`apply_moc` runs. See ``docs/diffusers.md``.
"""

from moc.integrations.diffusers.api import (
    MoCHandle,
    apply_moc,
    get_moc_handle,
    multi_shot_config,
    remove_moc,
    self_attention_layers,
    single_shot_config,
)
from moc.integrations.diffusers.models import SUPPORTED_MODELS, TokenGrid

__all__ = [
    "SUPPORTED_MODELS",
    "MoCHandle",
    "TokenGrid",
    "apply_moc",
    "get_moc_handle",
    "multi_shot_config",
    "remove_moc",
    "self_attention_layers",
    "single_shot_config",
]
