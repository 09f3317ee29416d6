"""benchmarks/background_grain.py: the row split puts a character row's speckle where it is."""

import torch
from background_grain import error_strip, passed_through, row_split, tint_split

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


def test_tint_split_tells_patch_tints_from_grain_within_patches():
    """A tint added to whole patches grows mostly the first number, zero-mean speckle mostly the second (not
    only: a row's median, which both are measured from, moves with the tints of the row's patches)."""
    scripts = eval_scripts(3, shots=4)
    batch = script_batch(scripts, MultiShotDiT(ModelConfig(width=32, depth=1, heads=2)))
    tint, within = (float(x) for x in tint_split(batch.frames, 8).split(" / "))
    b, f, c, h, w = batch.frames.shape
    generator = torch.Generator().manual_seed(0)
    per_patch = 0.06 * torch.randn(b, f, c, h // 8, w // 8, generator=generator)
    tinted = batch.frames + per_patch.repeat_interleave(8, -2).repeat_interleave(8, -1)
    tinted_tint, tinted_within = (float(x) for x in tint_split(tinted, 8).split(" / "))
    assert tinted_tint > tint + 0.03 and tinted_within - within < 0.5 * (tinted_tint - tint)
    speckle = 0.06 * torch.randn(batch.frames.shape, generator=generator)
    grainy_tint, grainy_within = (float(x) for x in tint_split(batch.frames + speckle, 8).split(" / "))
    assert grainy_within > within + 0.02 and grainy_tint < tint + 0.5 * (grainy_within - within)


def test_passed_through_input_and_error_strip():
    frames = torch.rand(2, 6, 3, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
    noise = torch.randn(frames.shape, generator=torch.Generator().manual_seed(1))
    # x_t / (1 - t) is the truth plus the noise scaled by t / (1 - t), clamped to the frames' range.
    torch.testing.assert_close(passed_through(frames, 0.5, noise), (frames + noise).clamp(-1, 1))
    assert error_strip(frames).shape == (3, 8, 16)  # frames 0 and 3 of the first scene
    assert (error_strip(frames, frames) == -1).all()  # no error is black
    shifted = error_strip(frames + 0.1, frames)  # an error of 0.1 shows at 0.4 of the way to white
    torch.testing.assert_close(shifted, torch.full_like(shifted, -0.6))
