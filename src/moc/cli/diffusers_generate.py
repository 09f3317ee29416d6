"""``moc generate --diffusers PATH``: run a diffusers video pipeline from a local folder with MoC attention.

:func:`generate` is a typer command function; the ``moc generate`` command calls it when ``--diffusers`` is
given. diffusers is imported only when it runs.
"""

from __future__ import annotations

import inspect
import time
import warnings
from pathlib import Path

import typer

DTYPES = ("float32", "bfloat16", "float16")
VIDEO_SUFFIXES = (".mp4", ".gif", ".npy")


def _int_list(name: str, text: str | None) -> list[int] | None:
    if text is None or not text.strip():
        return None
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise typer.BadParameter(
            f"{name} must be comma-separated integers like 7,7,7, got {text!r}"
        ) from None
    if not values:
        raise typer.BadParameter(f"{name} must list at least one integer, got {text!r}")
    return values


def generate(
    diffusers_path: Path = typer.Option(
        ...,
        "--diffusers",
        help="Local folder of a diffusers video pipeline (save_pretrained layout, with model_index.json).",
    ),
    prompt: str = typer.Option(..., help="Text prompt."),
    negative_prompt: str = typer.Option(
        None, help="Negative prompt (pipelines with classifier-free guidance)."
    ),
    out: Path = typer.Option(Path("runs/generate/video.mp4"), help="Output file: .mp4, .gif or .npy frames."),
    height: int = typer.Option(480, min=8, help="Video height in pixels."),
    width: int = typer.Option(832, min=8, help="Video width in pixels."),
    num_frames: int = typer.Option(81, min=1, help="Video frames (Wan: 4n+1)."),
    steps: int = typer.Option(50, min=1, help="Denoising steps."),
    guidance_scale: float = typer.Option(5.0, help="Classifier-free guidance scale."),
    seed: int = typer.Option(0, help="Random seed of the initial noise."),
    fps: int = typer.Option(16, min=1, help="Frames per second of the written video."),
    top_k: int = typer.Option(
        None,
        min=0,
        help="Routed chunks per query (default: 3 single-shot, as the paper's Wan; 5 multi-shot).",
    ),
    chunk_size: int = typer.Option(None, min=1, help="Chunk size in tokens (default: one latent frame)."),
    shots: str = typer.Option(
        None,
        help="Latent frames per shot, comma-separated (e.g. 7,7,7): the multi-shot setting "
        "(own-shot anchor, causal routing). Default: one shot, the single-shot setting.",
    ),
    causal: bool = typer.Option(None, "--causal/--no-causal", help="Override causal routing."),
    dense_layers: str = typer.Option(
        None, help="Comma-separated self-attention layer indices that stay dense (e.g. 0,1)."
    ),
    dense: bool = typer.Option(False, "--dense", help="Run stock dense attention instead (a baseline)."),
    backend: str = typer.Option("varlen", help="MoC backend: varlen, auto, flex or reference."),
    dtype: str = typer.Option("float32", help=f"Compute dtype: {', '.join(DTYPES)}."),
    device: str = typer.Option(None, help="Device (default: cuda if available, else cpu)."),
    max_sequence_length: int = typer.Option(None, min=1, help="Text tokens (pipelines that take it)."),
) -> None:
    """Generate a video with a local diffusers pipeline (Wan, CogVideoX, HunyuanVideo, LTX-Video) and MoC."""
    import torch

    folder = Path(diffusers_path)
    if not (folder / "model_index.json").is_file():
        raise typer.BadParameter(
            f"{folder} is not a diffusers pipeline folder (no model_index.json); save one with "
            "pipe.save_pretrained(folder) or download it with huggingface-cli download",
            param_hint="--diffusers",
        )
    if out.suffix.lower() not in VIDEO_SUFFIXES:
        raise typer.BadParameter(f"output must end in one of {VIDEO_SUFFIXES}, got {out}", param_hint="--out")
    if dtype not in DTYPES:
        raise typer.BadParameter(f"dtype must be one of {DTYPES}, got {dtype!r}", param_hint="--dtype")
    shot_frames = _int_list("--shots", shots)
    dense_set = set(_int_list("--dense-layers", dense_layers) or [])
    try:
        import diffusers
    except ImportError:
        typer.echo(
            "error: --diffusers needs diffusers: pip install 'mixture-of-contexts[diffusers]'", err=True
        )
        raise typer.Exit(1) from None
    from moc.integrations.diffusers import (
        apply_moc,
        multi_shot_config,
        self_attention_layers,
        single_shot_config,
    )

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    with warnings.catch_warnings():
        # newer diffusers renamed torch_dtype to dtype; older ones only know torch_dtype
        warnings.filterwarnings("ignore", message=".*torch_dtype.*", category=FutureWarning)
        pipe = diffusers.DiffusionPipeline.from_pretrained(
            str(folder), torch_dtype=getattr(torch, dtype), local_files_only=True
        )
    pipe.to(device)
    transformers = [
        t for t in (getattr(pipe, "transformer", None), getattr(pipe, "transformer_2", None)) if t is not None
    ]
    if not transformers:
        typer.echo(f"error: {type(pipe).__name__} has no transformer to apply MoC to", err=True)
        raise typer.Exit(1)

    handles = []
    if not dense:
        config = multi_shot_config() if shot_frames else single_shot_config()
        changes = {
            k: v
            for k, v in {"top_k": top_k, "chunk_size": chunk_size, "causal": causal}.items()
            if v is not None
        }
        try:
            config = config.replace(**changes)
            for transformer in transformers:
                count = len(self_attention_layers(transformer))
                bad = sorted(i for i in dense_set if not 0 <= i < count)
                if bad:
                    raise ValueError(f"--dense-layers {bad} out of range: the model has {count} layers")
                layers = [i for i in range(count) if i not in dense_set]
                handles.append(
                    apply_moc(
                        transformer,
                        config,
                        shots=shot_frames,
                        layers=layers,
                        backend=backend,
                        collect_stats=True,
                    )
                )
        except (TypeError, ValueError) as error:
            typer.echo(f"error: {error}", err=True)
            raise typer.Exit(2) from None

    requested = {
        "prompt": prompt,
        "negative_prompt": negative_prompt,
        "height": height,
        "width": width,
        "num_frames": num_frames,
        "num_inference_steps": steps,
        "guidance_scale": guidance_scale,
        "generator": torch.Generator(device=device).manual_seed(seed),
        "output_type": "np",
        "max_sequence_length": max_sequence_length,
    }
    accepted = inspect.signature(pipe.__call__).parameters
    kwargs = {k: v for k, v in requested.items() if v is not None and k in accepted}
    dropped = sorted(k for k, v in requested.items() if v is not None and k not in accepted)
    if dropped:
        typer.echo(f"note: {type(pipe).__name__} takes no {', '.join(dropped)}; ignored", err=True)

    start = time.perf_counter()
    try:
        result = pipe(**kwargs)
    except ValueError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None
    seconds = time.perf_counter() - start
    frames = result.frames[0]
    if isinstance(frames, torch.Tensor):
        frames = frames.float().cpu().numpy()
    _write(out, frames, fps)

    typer.echo(f"pipeline: {type(pipe).__name__} from {folder}")
    for handle in handles:
        grid = handle.grid
        typer.echo(
            f"MoC on {len(handle.layers)} of {len(handle.layers) + len(handle.dense_layers)} self-attention "
            f"layers of {handle.model}: {handle.config}, shots={list(handle.shots) if handle.shots else None}"
        )
        if grid is not None and handle.stats:
            typer.echo(
                f"token grid {grid.frames}x{grid.height}x{grid.width} ({grid.num_tokens} video tokens), "
                f"mean sparsity {handle.mean_sparsity():.1%}"
            )
    if dense:
        typer.echo("dense attention (no MoC)")
    typer.echo(
        f"generated {frames.shape[0]} frames of {frames.shape[2]}x{frames.shape[1]} in {seconds:.1f} s"
    )
    typer.echo(f"wrote {out}")


def _write(out: Path, frames: object, fps: int) -> None:
    """Write ``(F, H, W, 3)`` float frames in [0, 1] as .npy, .gif or .mp4."""
    import numpy as np

    out.parent.mkdir(parents=True, exist_ok=True)
    array = np.asarray(frames)
    if out.suffix.lower() == ".npy":
        np.save(out, array)
        return
    import imageio

    video = (np.clip(array, 0.0, 1.0) * 255).round().astype(np.uint8)
    if out.suffix.lower() == ".gif":
        imageio.mimsave(out, list(video), duration=1000 / fps, loop=0)
        return
    with imageio.get_writer(out, fps=fps, codec="libx264", quality=8) as writer:
        for frame in video:
            writer.append_data(frame)
