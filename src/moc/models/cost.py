"""Parameter counts and FLOPs per sample of a :class:`MultiShotDiT` (attention FLOPs from routing plans)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from moc.layout import Layout
from moc.models.attention import AttentionRecord, AttentionSpec
from moc.models.dit import MultiShotDiT
from moc.models.tokens import ScriptIds


@dataclass(frozen=True)
class ModelCost:
    """Forward cost of one sample.

    Attributes:
        parameters: trainable parameters.
        linear_flops: FLOPs of the token-wise layers (projections, MLPs, patch in/out), ``2 * params * L``.
        conv_flops: FLOPs of the convolutions over frames (stem, convolutional decoders, refiner), counted
            per output pixel as ``2 * in_channels * kernel area`` per output channel.
        attention_flops: ``4 * D * pairs`` summed over layers and heads, from ``RoutingPlan.stats`` counting.
        routing_flops: chunk scoring and pooling.
        dense_attention_flops: attention FLOPs of dense attention on the same sequence.
        density: attended pairs / dense pairs.
        tokens: sequence length.
    """

    parameters: int
    linear_flops: int
    conv_flops: int
    attention_flops: int
    routing_flops: int
    dense_attention_flops: int
    density: float
    tokens: int

    @property
    def total_flops(self) -> int:
        return self.linear_flops + self.conv_flops + self.attention_flops + self.routing_flops

    @property
    def attention_ratio(self) -> float:
        """(attention + routing) FLOPs as a fraction of dense attention FLOPs."""
        return (self.attention_flops + self.routing_flops) / self.dense_attention_flops


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@torch.no_grad()
def model_cost(
    model: MultiShotDiT,
    frames: torch.Tensor,
    t: torch.Tensor,
    text: torch.Tensor,
    layout: Layout,
    spec: AttentionSpec | None = None,
    ids: ScriptIds | None = None,
) -> ModelCost:
    """Run one forward pass on a batch and report the cost per sample (routing depends on the content).

    Args: as :meth:`MultiShotDiT.forward`.
    """
    record = AttentionRecord()
    conv_flops = 0

    def count_conv(conv: torch.nn.Conv2d, _inputs: tuple, output: torch.Tensor) -> None:
        nonlocal conv_flops
        kernel = conv.weight[0].numel()  # in_channels / groups * kernel height * kernel width
        conv_flops += 2 * kernel * output.numel()

    hooks = [m.register_forward_hook(count_conv) for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    was_training = model.training
    model.eval()
    try:
        model(frames, t, text, layout, spec=spec, record=record, ids=ids)
    finally:
        model.train(was_training)
        for hook in hooks:
            hook.remove()
    b = frames.shape[0]
    length = layout.num_tokens
    # Token-wise layers: every weight matrix of the blocks and in/out projections touches each token once
    # (the adaLN linears run per shot, not per token, and are left out).
    per_token = sum(
        m.weight.numel()
        for name, m in model.named_modules()
        if isinstance(m, torch.nn.Linear) and not name.endswith("ada") and "mlp" not in name.split(".")[0]
    )
    return ModelCost(
        parameters=count_parameters(model),
        linear_flops=2 * per_token * length,
        conv_flops=conv_flops // b,
        attention_flops=record.attention_flops // b,
        routing_flops=record.routing_flops // b,
        dense_attention_flops=record.dense_attention_flops // b,
        density=record.density,
        tokens=length,
    )
