"""FLOPs per sample of the multi-shot DiT in each attention mode on the shipped 8-shot example (training.md).

Usage: python benchmarks/model_cost.py [CHECKPOINT]   (default: the shipped checkpoint)
"""

import sys

import torch

from moc.generate.scene import default_checkpoint, script_batch
from moc.models import ATTENTION_MODES, AttentionSpec, model_cost
from moc.train import load_model
from moc.world import example_script_path
from moc.world.script import load_script

model = load_model(sys.argv[1] if len(sys.argv) > 1 else default_checkpoint())
batch = script_batch([load_script(example_script_path())], model)
t = torch.full((1, batch.num_shots), 0.5)
print(f"{batch.layout.num_tokens} tokens ({batch.layout.num_text_tokens} text), {model_cost.__name__}:")
columns = (
    "mode",
    "attention GFLOPs",
    "routing MFLOPs",
    "density",
    "(attention + routing) / dense",
    "token-wise GFLOPs",
    "pixel-wise GFLOPs",
)
print("| " + " | ".join(columns) + " |")
print("|" + "---|" * len(columns))
for mode in ATTENTION_MODES:
    spec = AttentionSpec(mode, model.config.moc)
    c = model_cost(model, batch.frames, t, batch.text, batch.layout, spec, ids=batch.ids)
    print(
        f"| {mode} | {c.attention_flops / 1e9:.3f} | {c.routing_flops / 1e6:.1f} | {c.density:.3f} "
        f"| {c.attention_ratio:.3f} | {c.linear_flops / 1e9:.3f} | {c.conv_flops / 1e9:.3f} |"
    )
print(f"parameters: {c.parameters:,}")
