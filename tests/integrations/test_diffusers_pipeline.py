"""Complete tiny pipelines run unchanged with MoC, fully offline.

* WanPipeline (trained tokenizer, tiny UMT5, tiny AutoencoderKLWan, tiny Wan), saved with ``save_pretrained``
  and loaded back, generates end to end; the ``generate`` CLI function runs it from the folder.
* CogVideoXPipeline and HunyuanVideoPipeline (tiny T5 / Llama + CLIP encoders and VAEs) generate end to end;
  HunyuanVideo with a batch of prompts of different lengths, so its text padding mask is exercised.

In each: a dense-equivalent MoC config reproduces the stock video, the sparse setting runs, and
``remove_moc`` gives back the bit-identical stock video.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import typer
from typer.testing import CliRunner

from moc import MoCConfig
from moc.cli.diffusers_generate import generate
from moc.integrations.diffusers import apply_moc, remove_moc, single_shot_config
from tests.integrations import tiny_diffusers as tiny

# 17 frames of 32 x 32: latent (5, 4, 4) after the 4x temporal / 8x spatial VAE, token grid 5 x 2 x 2.
CALL = {
    "prompt": "a red ball rolls across a wooden table",
    "negative_prompt": "",
    "height": 32,
    "width": 32,
    "num_frames": 17,
    "num_inference_steps": 2,
    "guidance_scale": 5.0,
    "max_sequence_length": 16,
    "output_type": "np",
}


def _generate(pipe) -> np.ndarray:
    return pipe(**CALL, generator=torch.Generator().manual_seed(0)).frames[0]


def test_wan_pipeline_end_to_end_with_moc(tiny_wan_pipeline_dir: Path) -> None:
    import diffusers

    pipe = diffusers.WanPipeline.from_pretrained(tiny_wan_pipeline_dir, local_files_only=True)
    stock = _generate(pipe)
    assert stock.shape == (17, 32, 32, 3)

    # Dense-equivalent MoC: the unchanged pipeline gives the stock video.
    apply_moc(pipe.transformer, MoCConfig(top_k=100, causal=False, local_anchor="chunk"))
    np.testing.assert_allclose(_generate(pipe), stock, atol=1e-4)

    # The paper's single-shot setting with top_k=1: own frame + 1 of 5 latent frames -> 60% sparsity.
    handle = apply_moc(pipe.transformer, single_shot_config(top_k=1), collect_stats=True)
    sparse = _generate(pipe)
    assert sparse.shape == stock.shape and np.isfinite(sparse).all()
    assert (handle.grid.frames, handle.grid.height, handle.grid.width) == (5, 2, 2)
    assert handle.mean_sparsity() == pytest.approx(0.6)
    assert not np.array_equal(sparse, stock)

    remove_moc(pipe.transformer)
    assert np.array_equal(_generate(pipe), stock)


JOINT_PIPELINES = {
    # 9 frames of 32 x 32: latent (3, 4, 4), token grid 3 x 2 x 2.
    "cogvideox": (
        tiny.build_tiny_cogvideox_pipeline,
        {"prompt": "a red ball", "negative_prompt": "", "guidance_scale": 6.0, "max_sequence_length": 8},
    ),
    "hunyuan": (
        tiny.build_tiny_hunyuan_pipeline,
        {
            "prompt": ["a red ball", "a cat walks through a sunny garden at noon"],
            "prompt_template": {"template": "{}", "crop_start": 0},
            "guidance_scale": 6.0,
            "max_sequence_length": 8,
        },
    ),
}


@pytest.mark.parametrize("name", JOINT_PIPELINES)
def test_joint_attention_pipelines_run_unchanged(name: str) -> None:
    build, extra = JOINT_PIPELINES[name]
    pipe = build()
    call = {
        "height": 32,
        "width": 32,
        "num_frames": 9,
        "num_inference_steps": 2,
        "output_type": "np",
        **extra,
    }

    def video() -> np.ndarray:
        return pipe(**call, generator=torch.Generator().manual_seed(0)).frames

    stock = video()
    apply_moc(pipe.transformer, MoCConfig(top_k=100, causal=False, local_anchor="chunk"))
    np.testing.assert_allclose(video(), stock, atol=1e-4)

    handle = apply_moc(pipe.transformer, single_shot_config(top_k=1), collect_stats=True)
    sparse = video()
    assert sparse.shape == stock.shape and np.isfinite(sparse).all()
    assert (handle.grid.frames, handle.grid.height, handle.grid.width) == (3, 2, 2)
    assert 0 < handle.mean_sparsity() < 1

    remove_moc(pipe.transformer)
    assert np.array_equal(video(), stock)


def _cli() -> typer.Typer:
    app = typer.Typer()
    app.command()(generate)
    return app


def test_generate_cli_writes_a_video(tiny_wan_pipeline_dir: Path, tmp_path: Path) -> None:
    args = ["--diffusers", str(tiny_wan_pipeline_dir), "--prompt", "a cat walks through a garden"]
    args += ["--height", "32", "--width", "32", "--num-frames", "17", "--steps", "2", "--device", "cpu"]
    args += ["--max-sequence-length", "16", "--fps", "8"]

    out = tmp_path / "video.mp4"
    result = CliRunner().invoke(_cli(), [*args, "--top-k", "1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.is_file() and out.stat().st_size > 0
    assert "mean sparsity 60.0%" in result.output
    assert "token grid 5x2x2" in result.output

    frames = tmp_path / "shots.npy"
    result = CliRunner().invoke(
        _cli(), [*args, "--shots", "2,3", "--dense-layers", "0", "--out", str(frames)]
    )
    assert result.exit_code == 0, result.output
    assert np.load(frames).shape == (17, 32, 32, 3)
    assert "MoC on 1 of 2 self-attention layers" in result.output


def test_generate_cli_errors(tiny_wan_pipeline_dir: Path, tmp_path: Path) -> None:
    base = ["--prompt", "x", "--height", "32", "--width", "32", "--num-frames", "17", "--steps", "1"]
    base += ["--device", "cpu", "--out", str(tmp_path / "v.mp4")]
    result = CliRunner().invoke(_cli(), ["--diffusers", str(tmp_path), *base])
    assert result.exit_code != 0 and "model_index.json" in result.output

    result = CliRunner().invoke(_cli(), ["--diffusers", str(tiny_wan_pipeline_dir), *base, "--shots", "2,2"])
    assert result.exit_code == 1
    assert "gives 4 latent frames" in result.output
