"""benchmarks/background_grain.py: the row split puts a character row's speckle where it is."""

import torch
from background_grain import row_split

from moc.eval.memory import eval_scripts
from moc.generate.scene import script_batch
from moc.models import ModelConfig, MultiShotDiT


def test_row_split_separates_empty_rows_from_rows_with_a_character():
    scripts = eval_scripts(3, shots=4)
    batch = script_batch(scripts, MultiShotDiT(ModelConfig(width=32, depth=1, heads=2)))
    empty, beside = (float(x) for x in row_split(batch.frames, batch).split(" / "))
    assert empty < 0.01 and beside < 0.01  # the world's backgrounds are flat bands with faint marks
    # Speckle in the rows where a character stands: only the second number grows.
    lanes = batch.ids.lanes[:, batch.frame_shot]  # (B, F, R)
    rows = lanes.repeat_interleave(batch.frames.shape[-2] // lanes.shape[-1], dim=-1) > 0  # (B, F, H)
    speckle = 0.1 * torch.randn(batch.frames.shape, generator=torch.Generator().manual_seed(0))
    noisy = batch.frames + speckle * rows[:, :, None, :, None]
    noisy_empty, noisy_beside = (float(x) for x in row_split(noisy, batch).split(" / "))
    assert noisy_empty == empty and noisy_beside > beside + 0.02
