"""Generate a world scene with the multi-shot DiT and write what explains it.

:func:`generate_scene` turns a :class:`~moc.world.Script` into frames (joint or shot-by-shot sampling);
:func:`write_outputs` writes the MP4, GIF, contact sheet, routing map and a JSON summary.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import textwrap
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from moc import atomic
from moc.generate.sampler import DETERMINISTIC_BELOW, HISTORY_NOISE, sample_autoregressive, sample_joint
from moc.layout import NO_SHOT, VIDEO, Layout
from moc.models import AttentionRecord, AttentionSpec, MultiShotDiT
from moc.world.data import Batch, DataConfig, make_batch
from moc.world.scene import Scene
from moc.world.script import Script, ScriptConfig

MODES = ("joint", "autoregressive")
DEFAULT_CHECKPOINT = Path(__file__).resolve().parent.parent / "checkpoints" / "default.safetensors"


def default_checkpoint() -> Path:
    """The checkpoint shipped in the package (raises if the install lacks it)."""
    if not DEFAULT_CHECKPOINT.is_file():
        raise FileNotFoundError(
            f"the default checkpoint {DEFAULT_CHECKPOINT} is missing from this install; "
            "pass --checkpoint PATH or reinstall the package"
        )
    return DEFAULT_CHECKPOINT


def data_config_for(
    scripts: Sequence[Script], model: MultiShotDiT, frame_size: tuple[int, int] = (32, 32)
) -> DataConfig:
    """The data config that tokenises ``scripts`` as in training (caption lengths grow only if needed)."""
    defaults = ScriptConfig()
    max_chars = max(
        [defaults.max_characters_per_shot] + [len(s.characters) for sc in scripts for s in sc.shots]
    )
    cast = max([defaults.cast_size[1]] + [len(sc.cast) for sc in scripts])  # type: ignore[index]
    places = max([defaults.num_places[1]] + [len(sc.places) for sc in scripts])  # type: ignore[index]
    script_config = dataclasses.replace(
        defaults, max_characters_per_shot=max_chars, cast_size=(0, cast), num_places=(1, places)
    )
    config = DataConfig(
        batch_size=len(scripts),
        height=frame_size[0],
        width=frame_size[1],
        patch_size=model.config.patch_size,
        script=script_config,
    )
    longest = max(config.caption_tokens, config.global_caption_tokens)  # type: ignore[type-var]
    if longest > model.config.max_caption_tokens:
        raise ValueError(
            f"a caption needs {longest} tokens but the model reads at most "
            f"{model.config.max_caption_tokens}; "
            "use fewer characters per shot or a smaller cast"
        )
    return config


def script_batch(scripts: Sequence[Script], model: MultiShotDiT, seed: int | None = None) -> Batch:
    """A batch of scenes for these scripts: the ground truth and the looks a model can be told, drawn with
    each script's own appearance seed (``script.seed``, as ``moc world preview`` renders it) unless ``seed``
    overrides it for all."""
    frames = {s.shot_frames for s in scripts}
    if len(frames) != 1:
        raise ValueError(f"scenes generated together must share frames per shot, got {sorted(frames)}")
    config = data_config_for(scripts, model)
    scenes = [Scene.from_script(s, seed) for s in scripts]
    return make_batch(scenes, config)


@dataclass
class Generation:
    """Generated scenes and what it cost.

    Attributes:
        frames: ``(B, F, 3, H, W)`` in [-1, 1].
        batch: the scripts' batch (text, layout, ground truth).
        record: attention cost and routing hits, summed over layers, steps and shots.
        wall_s: sampling wall-clock seconds.
        mode: ``joint`` or ``autoregressive``.
        spec: the attention spec used.
        told_looks: whether the model was told each character's look where it first appears.
    """

    frames: torch.Tensor
    batch: Batch
    record: AttentionRecord
    wall_s: float
    mode: str
    spec: AttentionSpec
    told_looks: bool


def generate_scenes(
    model: MultiShotDiT,
    scripts: Sequence[Script],
    *,
    mode: str = "joint",
    steps: int = 16,
    seed: int = 0,
    spec: AttentionSpec | None = None,
    progress: Callable[[int], None] | None = None,
    eta: float = 1.0,
    deterministic_below: float = DETERMINISTIC_BELOW,
    history_noise: float | None = None,
    tell_looks: bool | None = None,
) -> Generation:
    """Generate one video per script (all scripts must share frames per shot).

    Args:
        model: the DiT (switched to eval mode).
        scripts: scene scripts.
        mode: ``joint`` (all shots denoised together) or ``autoregressive`` (shot by shot, cached history).
        steps: Euler steps (per shot in autoregressive mode).
        seed: seed of the initial noise; the same seed gives the same video.
        spec: attention mode and MoC config (default: the model's for ``mode``, see
            :meth:`~moc.models.MultiShotDiT.default_spec`).
        progress: called with 1 per denoising step.
        eta: sampler noise (0: deterministic Euler; 1: fresh noise each step, the default).
        deterministic_below: steps from a level below this draw no fresh noise (see
            :func:`~moc.generate.sampler.sample_joint`).
        history_noise: autoregressive mode only: the noise level at which a finished shot joins the
            history (0: clean; ``None``: :data:`~moc.generate.sampler.HISTORY_NOISE`; see
            :func:`~moc.generate.sampler.sample_autoregressive`).
        tell_looks: tell a model with ``look_codes`` each character's look (the shape of the ground truth's
            rendering, which the script's appearance seed fixes, and to a model with ``paint_features`` its
            colours and accent pattern) in the shot that introduces it, and a model with
            ``scenery_features`` each place's scenery where it first appears; later shots are never told.
            ``None`` (the default) tells exactly the models that have look codes.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    model.eval()
    # Eval mode: routing applies no drop-off / drop-in.
    spec = spec or model.default_spec(joint=mode == "joint")
    if tell_looks and not model.config.look_codes:
        raise ValueError("this model cannot be told looks (model.look_codes is 0)")
    told = bool(model.config.look_codes) if tell_looks is None else tell_looks
    batch = script_batch(scripts, model)
    record = AttentionRecord()
    if history_noise is not None and mode != "autoregressive":
        raise ValueError("history noise applies to the autoregressive mode only")
    sampler = sample_joint
    if mode == "autoregressive":
        noise = HISTORY_NOISE if history_noise is None else history_noise
        sampler = functools.partial(sample_autoregressive, history_noise=noise)
    gen = torch.Generator().manual_seed(seed)
    begin = time.perf_counter()
    frames = sampler(
        model,
        batch.text,
        batch.layout,
        tuple(batch.frames.shape[2:]),
        steps=steps,
        generator=gen,
        spec=spec,
        record=record,
        progress=progress,
        eta=eta,
        deterministic_below=deterministic_below,
        ids=batch.ids.told(told),
    )
    return Generation(frames, batch, record, time.perf_counter() - begin, mode, spec, told)


def routing_map(record: AttentionRecord, layout: Layout, chunk_size: int | None) -> np.ndarray:
    """``(S, C)`` share of each shot's routed selections that went to each chunk of the full layout.

    Hits of prefix layouts (shot-by-shot generation) are placed at the same chunk indices: the chunk
    table of a prefix of segments is a prefix of the full table.
    """
    chunks = layout.chunks(chunk_size)
    c = chunks.num_chunks
    total = torch.zeros(c, c, dtype=torch.float64)
    for hits_layout, hits in record.hits.items():
        n = hits.shape[0]
        if hits_layout.segments != layout.segments[: len(hits_layout.segments)] or n > c:
            continue
        total[:n, :n] += hits
    shots = layout.shots
    shot_of_chunk = chunks.shot.long()
    out = np.zeros((len(shots), c))
    for i, s in enumerate(shots):
        row = total[shot_of_chunk == s].sum(0)
        if row.sum() > 0:
            out[i] = (row / row.sum()).numpy()
    return out


def retrieval_precision(
    shares: np.ndarray,
    script: Script,
    layout: Layout,
    chunk_size: int | None,
    kind: str = "place",
    *,
    causal: bool = True,
) -> tuple[float, float]:
    """How much video routing went to other shots of the same place (``kind="place"``) or sharing a character.

    The other shots are the earlier ones when ``causal``, else all but the query's own. Only routed video
    chunks count: with ``text_anchor=False`` captions are routed too, and :func:`caption_share` reports them.

    Returns ``(precision, base_rate)``: the mean share of a shot's routed video chunks on such shots, over the
    shots that have one, and the share that uniform routing over all candidate video chunks would give.
    """
    chunks = layout.chunks(chunk_size)
    shot_of_chunk = chunks.shot.numpy()
    video = chunks.kind.numpy() == VIDEO
    hits, base = [], []
    for s in range(len(script.shots)):
        others = _candidate_shots(s, len(script.shots), causal)
        related_shots = [e for e in others if _related(script, e, s, kind)]
        routed_video = float(shares[s][video].sum())
        if not related_shots or routed_video == 0:
            continue
        candidates = video & np.isin(shot_of_chunk, others)
        related = candidates & np.isin(shot_of_chunk, related_shots)
        hits.append(float(shares[s][related].sum()) / routed_video)
        base.append(related.sum() / max(1, candidates.sum()))
    return (float(np.mean(hits)) if hits else float("nan"), float(np.mean(base)) if base else float("nan"))


def caption_share(shares: np.ndarray, layout: Layout, chunk_size: int | None) -> float:
    """Mean share of a shot's routed chunks that were captions (0 unless ``text_anchor=False``)."""
    text = layout.chunks(chunk_size).kind.numpy() != VIDEO
    routed = shares.sum(1) > 0
    return float(shares[routed][:, text].sum(1).mean()) if routed.any() else 0.0


def _candidate_shots(shot: int, shots: int, causal: bool) -> list[int]:
    """The shots whose chunks a query of ``shot`` may route to (besides its own, which is an anchor)."""
    return list(range(shot)) if causal else [e for e in range(shots) if e != shot]


def _related(script: Script, other: int, shot: int, kind: str) -> bool:
    a, b = script.shots[other], script.shots[shot]
    if kind == "place":
        return a.place == b.place
    return bool(set(a.character_ids) & set(b.character_ids))


def write_routing_map(
    shares: np.ndarray,
    script: Script,
    layout: Layout,
    chunk_size: int | None,
    path: Path,
    title: str,
    *,
    causal: bool = True,
) -> Path:
    """The routing map PNG: rows are query shots, columns routable chunks; boxes mark related shots.

    Columns are the video chunks, plus the caption chunks when any shot routed to one (``text_anchor=False``).
    Boxes mark the shots a query may route to: the earlier ones when ``causal``, else all others.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    chunks = layout.chunks(chunk_size)
    is_video = chunks.kind.numpy() == VIDEO
    columns = np.flatnonzero(is_video | (shares.sum(0) > 0))
    shot_of_chunk = chunks.shot.numpy()
    data = shares[:, columns]
    fig, ax = plt.subplots(figsize=(max(8, 0.18 * len(columns) + 2), 0.45 * len(script.shots) + 2.2))
    ax.imshow(data, cmap="magma_r", aspect="auto", vmin=0, vmax=max(1e-9, float(data.max())))
    for s in range(len(script.shots)):
        others = set(_candidate_shots(s, len(script.shots), causal))
        for j, c in enumerate(columns):
            e = shot_of_chunk[c]
            if e not in others:
                continue
            if _related(script, e, s, "place"):
                ax.add_patch(Rectangle((j - 0.5, s - 0.5), 1, 1, fill=False, ec="#1f77b4", lw=1.4))
            elif _related(script, e, s, "character"):
                box = Rectangle((j - 0.45, s - 0.45), 0.9, 0.9, fill=False, ec="#2ca02c", lw=1.0, ls="--")
                ax.add_patch(box)
    # A tick where a new shot (or the global caption) starts; its caption column, when shown, comes first.
    starts = [
        j for j in range(len(columns)) if j == 0 or shot_of_chunk[columns[j]] != shot_of_chunk[columns[j - 1]]
    ]
    labels = []
    for j in starts:
        c = columns[j]
        owner = "global caption" if shot_of_chunk[c] == NO_SHOT else f"shot {shot_of_chunk[c]}"
        labels.append(owner if is_video[c] or shot_of_chunk[c] == NO_SHOT else f"{owner} (caption first)")
    ax.set_xticks(starts, labels, rotation=90, fontsize=7)
    ax.set_yticks(
        range(len(script.shots)),
        [
            f"shot {s} ({sh.place}; {','.join(map(str, sh.character_ids)) or '-'})"
            for s, sh in enumerate(script.shots)
        ],
        fontsize=7,
    )
    for j in starts[1:]:
        ax.axvline(j - 0.5, color="white", lw=0.8)
    which = "an earlier shot" if causal else "another shot, earlier or later (non-causal routing)"
    ax.set_xlabel(f"retrieved chunk of {which}\nsolid blue box: same place; dashed green: a shared character")
    ax.set_title("\n".join(textwrap.wrap(title, 110)), fontsize=9)
    fig.tight_layout()
    return atomic.save_figure(fig, path, dpi=130)


def write_outputs(
    generation: Generation, out: str | Path, *, index: int = 0, fps: float = 4.0
) -> dict[str, Path]:
    """Write scene.mp4, scene.gif, contact_sheet.png, routing_map.png (MoC/window) and summary.json."""
    from moc.world.metrics import frames_from_tensor
    from moc.world.preview import contact_sheet, video_frames, write_gif, write_mp4
    from moc.world.render import Clip

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    batch = generation.batch
    script = batch.scripts[index]
    frames = frames_from_tensor(generation.frames[index])
    clip = Clip(
        frames=frames,
        labels=np.full(frames.shape[:3], -1, np.int8),
        frame_shot=script.frame_shot,
        boxes=tuple(() for _ in range(len(frames))),
        sprite_size=0,
        scenery=np.zeros(frames.shape[:3], bool),
    )
    scene = Scene.from_script(script)
    paths: dict[str, Path] = {}
    video = video_frames(scene, clip)
    for kind, writer in (("mp4", write_mp4), ("gif", write_gif)):
        tmp = out / f".scene.tmp.{kind}"
        writer(video, tmp, fps)
        paths[kind] = out / f"scene.{kind}"
        os.replace(tmp, paths[kind])
    paths["png"] = atomic.save_image(contact_sheet(scene, clip), out / "contact_sheet.png")
    record, spec = generation.record, generation.spec
    summary = {
        "mode": generation.mode,
        "attention": spec.mode,
        "top_k": spec.moc.top_k,
        "chunk_size": spec.moc.chunk_size,
        "causal": spec.moc.causal,
        "shots": len(script.shots),
        "frames": int(frames.shape[0]),
        "tokens": batch.layout.num_tokens,
        "told_looks": generation.told_looks,
        "density": record.density,
        "attention_flops_vs_dense": record.flops_ratio,
        "wall_s": generation.wall_s,
    }
    if spec.mode in ("moc", "window"):
        shares = routing_map(record, batch.layout, spec.moc.chunk_size)
        causal = spec.mode == "window" or spec.moc.causal  # the window's fixed plan is the previous shot
        place, place_base = retrieval_precision(
            shares, script, batch.layout, spec.moc.chunk_size, "place", causal=causal
        )
        cast, cast_base = retrieval_precision(
            shares, script, batch.layout, spec.moc.chunk_size, "character", causal=causal
        )
        captions = caption_share(shares, batch.layout, spec.moc.chunk_size)
        summary.update(
            place_retrieval=place,
            place_base_rate=place_base,
            character_retrieval=cast,
            character_base_rate=cast_base,
            caption_routing_share=captions,
        )
        title = (
            f"{spec.mode} routing, {generation.mode} generation: share of each shot's routed chunks "
            f"(mean over heads, layers, steps). Of the routed frames, to same-place shots: {place:.2f} "
            f"(uniform: {place_base:.2f}); to shots sharing a character: {cast:.2f} "
            f"(uniform: {cast_base:.2f})" + (f". Routed to captions: {captions:.2f}" if captions > 0 else "")
        )
        paths["routing_map"] = write_routing_map(
            shares, script, batch.layout, spec.moc.chunk_size, out / "routing_map.png", title, causal=causal
        )
    paths["summary"] = atomic.write_text(out / "summary.json", json.dumps(summary, indent=2))
    return paths
