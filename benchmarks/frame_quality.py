"""How clean a model's frames are: its reconstruction floor and the backgrounds of what it generates.

Two measurements on held-out 8-shot scenes (those of ``moc eval memory``):

* the floor: ground-truth scenes noised to a low level ``t`` (every shot), and the MSE of the model's clean
  prediction against the truth (in [-1, 1] units), split into character pixels and background. Near ``t = 0``
  the input already shows the answer; what a model loses there it loses in every sample, since a sample's
  last step is a prediction at ``t = 0.12`` (16 steps). Also the background roughness (below) of the
  prediction at the lowest level: what the denoiser adds to backgrounds it is all but given.
* detail kept: the same scenes noised to ``t = 0.22`` or ``0.48`` (levels of the 16-step grid) and sampled
  from there to the end with the default sampler, as in SDEdit. A model that denoises well gives the scene
  back; one that loses a little detail at every step ends with blobs where the truth had diamonds, even
  though each single step looked fine.
* generated frames (joint and shot by shot, default sampler): background chroma (max - min of RGB in [0, 1])
  and roughness (mean distance of a background pixel from its row's median colour), against the ground
  truth's. Background pixels are those within 0.15 of their row's median, as the world's metrics find them.
* shapes (a second table): how often the nearest world shape of each character's silhouette
  (:func:`moc.world.metrics.shape_match`) is the truth's, in the one-step predictions and the samples kept
  from the truth; and for generated frames (and the truth) the world metric ``shape`` (IoU with the nearest
  world shape) and which shapes they draw.
* ``--tell-looks``: models with ``model.look_codes`` are told each character's look (the truth's shape)
  (and its paint, to models with ``model.paint_features``) in the shot that introduces it, in every
  measurement. The second table then adds, for generated frames, how often the told shape is drawn where it
  is told and in the later shots that must keep it, how often a character's look is nearest its own in
  the truth (:func:`paint_kept`), and how often a shot's place is nearest its own in the truth, with its
  mean distance from it (:func:`place_distances`; told to models with ``model.scenery_features`` where the
  place first appears).

Usage: python benchmarks/frame_quality.py CHECKPOINT [CHECKPOINT ...] [--scenes N] [--threads N]
    [--steps N] [--eta E] [--deterministic-below T] [--no-estimate] [--tell-looks] [--image PATH]
    (the image: the truth, then for each checkpoint its prediction at t = 0.02 and its sample from the truth
    noised to t = 0.48)
"""

import argparse
import dataclasses
from collections import Counter

import numpy as np
import torch
from PIL import Image

from moc.eval.memory import eval_scripts
from moc.generate.sampler import sample_joint, time_grid
from moc.generate.scene import generate_scenes, script_batch
from moc.train import load_model
from moc.world.data import first_shots
from moc.world.metrics import (
    frames_from_tensor,
    observe_scene,
    row_background,
    score_scene,
    shape_match,
    summarize,
)

FLOOR_LEVELS = (0.02, 0.12, 0.3)
SHAPE_LEVELS = (0.12, 0.3, 0.48)
RESAMPLE_FROM = (2, 5)  # indices from the end of the 16-step grid: t = 0.22 and 0.48
BACKGROUND_DISTANCE = 0.15


def background_stats(frames: torch.Tensor) -> tuple[float, float]:
    """``(chroma, roughness)`` of the background pixels of ``(B, F, C, H, W)`` frames in [-1, 1]."""
    rgb = frames_from_tensor(frames)  # (B, F, H, W, 3) float in [0, 1]
    rgb = rgb.reshape(-1, *rgb.shape[-3:])
    _, distance = row_background(rgb)
    background = distance < BACKGROUND_DISTANCE
    chroma = rgb.max(-1) - rgb.min(-1)
    return float(chroma[background].mean()), float(distance[background].mean())


def shapes_drawn(frames: torch.Tensor, scripts) -> list[str | None]:
    """The nearest world shape of every scripted character in every shot (``None``: never whole)."""
    out = []
    for video, script in zip(frames_from_tensor(frames), scripts, strict=True):
        for shot in observe_scene(video, script):
            for _, seen in sorted(shot.characters.items()):
                out.append(None if seen.silhouette is None else shape_match(seen.silhouette)[0])
    return out


def without_estimate(model):
    """``model`` sampled without self-conditioning: the samplers pass an estimate only to a model whose config
    says it reads one, and one that reads none reads zeros. For ablations only; the weights are unchanged."""
    model.config = model.config.replace(self_condition=False)
    return model


def drawn_cells(frames: torch.Tensor, scripts) -> tuple[str, str]:
    """The world metric ``shape`` (IoU with the nearest world shape) of ``frames``, and the shapes drawn."""
    videos = frames_from_tensor(frames)
    shape = summarize(score_scene(v, s) for v, s in zip(videos, scripts, strict=True)).get("shape")
    drawn = Counter(d for d in shapes_drawn(frames, scripts) if d is not None)
    return f"{shape:.3f}", ", ".join(f"{name} {n}" for name, n in drawn.most_common())


def kept_by_shape(frames: torch.Tensor, truth: list[str | None], scripts) -> str:
    """``"circle 30/31, triangle 0/12, ..."``: per true shape, how many of its whole characters ``frames``
    draw with that shape (every shot), most frequent true shape first."""
    drawn = shapes_drawn(frames, scripts)
    totals = Counter(t for t in truth if t is not None)
    kept = Counter(t for d, t in zip(drawn, truth, strict=True) if t is not None and d == t)
    return ", ".join(f"{name} {kept[name]}/{n}" for name, n in totals.most_common())


def same_shape(pred: torch.Tensor, truth: list[str | None], scripts) -> str:
    """Share of the truth's whole characters whose nearest shape in ``pred`` is the truth's."""
    drawn = shapes_drawn(pred, scripts)
    pairs = [(d, t) for d, t in zip(drawn, truth, strict=True) if t is not None]
    return f"{sum(d == t for d, t in pairs) / len(pairs):.2f}"


def character_slots(scripts) -> list[tuple[int, int, int]]:
    """``(scene, shot, character id)`` of every scripted character in every shot, in the order of
    :func:`shapes_drawn` (scene by scene, shot by shot, ids ascending)."""
    return [
        (n, s, cid)
        for n, script in enumerate(scripts)
        for s, shot in enumerate(script.shots)
        for cid in sorted(a.id for a in shot.characters)
    ]


def intro_flags(scripts) -> list[bool]:
    """For every scripted character in every shot, in the order of :func:`shapes_drawn`: whether that shot
    introduces it (where a told model is told its look)."""
    first = [first_shots(script) for script in scripts]
    return [first[n][cid] == s for n, s, cid in character_slots(scripts)]


def intro_later(hits: list[tuple[bool, bool | float]]) -> str:
    """``"intro / later"``: the mean of the ``(intro, value)`` values among the introductions and the rest
    (for ``bool`` hits, the share that are true)."""
    cells = []
    for first in (True, False):
        chosen = [hit for intro, hit in hits if intro == first]
        cells.append(f"{sum(chosen) / max(1, len(chosen)):.2f}")
    return " / ".join(cells)


def told_kept(frames: torch.Tensor, truth: list[str | None], scripts) -> str:
    """``"intro / later"``: the share of whole characters drawn with the truth's shape in the shots that
    introduce them (where a told model is told it) and in later shots (where it must keep it)."""
    drawn = shapes_drawn(frames, scripts)
    hits = zip(intro_flags(scripts), drawn, truth, strict=True)
    return intro_later([(i, d == t) for i, d, t in hits if t is not None])


def observed_pairs(frames: torch.Tensor, truth_frames: torch.Tensor, scripts):
    """``(seen, truth, script)`` per scene: the world metrics' observations of ``frames`` and of the truth."""
    videos = zip(frames_from_tensor(frames), frames_from_tensor(truth_frames), scripts, strict=True)
    for video, real, script in videos:
        yield observe_scene(video, script), observe_scene(real, script), script


def look_distances(
    frames: torch.Tensor, truth_frames: torch.Tensor, scripts
) -> list[tuple[bool, float, float]]:
    """For every character seen in both ``frames`` and the truth, in every shot: ``(intro, own, other)``:
    whether the shot introduces it, the distance of its look (the world metrics' descriptor: colour per cell
    and silhouette, as the identity metric compares them) from the truth's same character in the same shot,
    and from the nearest other character of the truth's scene (in any shot)."""
    out = []
    intro = iter(intro_flags(scripts))
    for seen, truth, _ in observed_pairs(frames, truth_frames, scripts):
        looks = {}  # each character's truth descriptors (every shot that shows it)
        for shot in truth:
            for cid, obs in shot.characters.items():
                if obs.descriptor is not None:
                    looks.setdefault(cid, []).append(obs.descriptor)
        for drawn, real_shot in zip(seen, truth, strict=True):
            for cid in sorted(drawn.characters):
                first = next(intro)
                mine, own = drawn.characters[cid].descriptor, real_shot.characters[cid].descriptor
                if mine is None or own is None:
                    continue
                others = [d for o, ds in looks.items() if o != cid for d in ds]
                other = min((float(np.linalg.norm(mine - d)) for d in others), default=np.inf)
                out.append((first, float(np.linalg.norm(mine - own)), other))
    return out


def place_distances(
    frames: torch.Tensor, truth_frames: torch.Tensor, scripts
) -> list[tuple[bool, float, float]]:
    """For every shot whose place both ``frames`` and the truth show: ``(intro, own, other)``: whether the
    shot is the place's first (where a model with ``scenery_features`` is told it), the distance of its
    place descriptor (the place metric's: background colour per horizontal band) from the truth's same shot,
    and from the nearest shot of another place in the truth's scene."""
    out = []
    for seen, truth, script in observed_pairs(frames, truth_frames, scripts):
        places = [shot.place for shot in script.shots]
        for s, (drawn, real) in enumerate(zip(seen, truth, strict=True)):
            if not (drawn.place_found and real.place_found):
                continue
            others = [t.place_descriptor for t, p in zip(truth, places) if p != places[s] and t.place_found]
            mine = drawn.place_descriptor
            own = float(np.linalg.norm(mine - real.place_descriptor))
            other = min((float(np.linalg.norm(mine - d)) for d in others), default=np.inf)
            out.append((places.index(places[s]) == s, own, other))
    return out


def paint_kept(distances: list[tuple[bool, float, float]]) -> str:
    """``"intro / later"`` from :func:`look_distances`: the share of characters whose look is nearer the
    truth's same character than every other character of the truth's scene. Chance is about one over the
    scene's cast (3 to 4 characters). From :func:`place_distances`, the same for places."""
    return intro_later([(i, own < other) for i, own, other in distances])


def look_error(distances: list[tuple[bool, float, float]]) -> str:
    """``"intro / later"`` from :func:`look_distances`: the mean distance of a character's look from the
    truth's same character (0 for the truth). Unlike :func:`paint_kept` it also counts what the body colour
    alone does not decide, such as an accent in the wrong colour or place. From :func:`place_distances`, the
    same for places."""
    return intro_later([(i, own) for i, own, _ in distances])


def place_cells(frames: torch.Tensor, truth_frames: torch.Tensor, scripts) -> list[str]:
    """``[nearest, distance]`` (intro / later each) of :func:`place_distances`."""
    distances = place_distances(frames, truth_frames, scripts)
    return [paint_kept(distances), look_error(distances)]


def table_head(columns: list[str]) -> str:
    """A markdown table's header and separator for a model column plus ``columns``."""
    return f"| model | {' | '.join(columns)} |\n" + "|---" * (len(columns) + 1) + "|"


def strip(frames: torch.Tensor, scenes: int = 3) -> torch.Tensor:
    """Every third frame of the first ``scenes`` scenes: ``(C, scenes * H, W * F / 3)``, a scene per row."""
    return torch.cat([torch.cat(list(video[::3]), dim=-1) for video in frames[:scenes]], dim=-2)


def save_strips(rows: list[torch.Tensor], path: str) -> None:
    """:func:`strip` images stacked top to bottom as one PNG, 3x enlarged."""
    pixels = ((torch.cat(rows, dim=-2).permute(1, 2, 0).numpy() + 1) * 127.5).clip(0, 255).astype(np.uint8)
    Image.fromarray(pixels).resize((pixels.shape[1] * 3, pixels.shape[0] * 3), Image.NEAREST).save(path)


def predict_clean(model, batch, t: float, noise: torch.Tensor) -> torch.Tensor:
    shots = len(batch.layout.shots)
    x_t = (1 - t) * batch.frames + t * noise
    level = torch.full((len(batch.frames), shots), t)
    with torch.no_grad():
        return model(x_t, level, batch.text, batch.layout, ids=batch.ids).clamp(-1, 1)


def told_batch(batch, tell: bool):
    """``batch`` whose ids tell their looks only if ``tell`` (a model without ``look_codes`` ignores them)."""
    return dataclasses.replace(batch, ids=batch.ids.told(tell))


def errors(pred: torch.Tensor, truth: torch.Tensor, character: torch.Tensor) -> str:
    """``"char / bg"`` MSE of ``pred`` against ``truth``."""
    error = (pred - truth).square()
    return f"{error[character].mean():.4f} / {error[~character].mean():.4f}"


def resample(model, batch, start: int, steps: int, eta: float, deterministic_below: float) -> torch.Tensor:
    """The truth noised to ``time_grid(steps)[-1 - start]``, then sampled jointly from there to ``t = 0``."""
    first = steps - start
    generator = torch.Generator().manual_seed(0)
    t = float(time_grid(steps)[first])
    x = (1 - t) * batch.frames + t * torch.randn(batch.frames.shape, generator=generator)
    return sample_joint(
        model,
        batch.text,
        batch.layout,
        tuple(batch.frames.shape[2:]),
        steps=steps,
        generator=generator,
        spec=model.default_spec(joint=True),
        eta=eta,
        deterministic_below=deterministic_below,
        ids=batch.ids,
        start=x,
        first_step=first,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--scenes", type=int, default=16)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--eta", type=float, default=1.0)
    parser.add_argument("--deterministic-below", type=float, default=0.0)
    parser.add_argument("--image", default=None)
    parser.add_argument(
        "--no-estimate",
        action="store_true",
        help="sample a self-conditioned model without its previous estimates (every step reads none)",
    )
    parser.add_argument(
        "--tell-looks", action="store_true", help="tell models with model.look_codes the truth's looks"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    scripts = eval_scripts(args.scenes, shots=8)
    rows = []
    sampler = {"steps": args.steps, "eta": args.eta, "deterministic_below": args.deterministic_below}
    print(
        f"{args.scenes} held-out 8-shot scenes; sampler: {args.steps} steps, eta {args.eta:g}, "
        f"deterministic below t = {args.deterministic_below:g}"
    )
    kept = [f"kept from t={float(time_grid(args.steps)[-1 - k]):.2f}" for k in RESAMPLE_FROM]
    print(
        table_head(
            [f"floor t={t} (char / bg)" for t in FLOOR_LEVELS]
            + [f"bg roughness, one step at t={FLOOR_LEVELS[0]}"]
            + [f"{name} (char / bg)" for name in kept]
            + [f"bg {m}, {mode}" for mode in ("joint", "shot by shot") for m in ("chroma", "roughness")]
        )
    )
    truth_cells, shape_rows = None, []
    for path in args.checkpoints:
        model = without_estimate(load_model(path)) if args.no_estimate else load_model(path)
        tell = args.tell_looks and bool(model.config.look_codes)
        batch = told_batch(script_batch(scripts, model), tell)
        truth_shapes = shapes_drawn(batch.frames, scripts)
        if truth_cells is None:
            chroma, rough = background_stats(batch.frames)
            generated = f"{chroma:.3f} | {rough:.4f}"
            truth_cells = (
                f"| ground truth | {' | '.join('0 / 0' for _ in FLOOR_LEVELS)} | {rough:.4f} | "
                f"{' | '.join('0 / 0' for _ in RESAMPLE_FROM)} | {generated} | {generated} |"
            )
            rows.append(strip(batch.frames))
            iou, drawn = drawn_cells(batch.frames, scripts)
            truth_shape_cells = ["1" for _ in SHAPE_LEVELS + RESAMPLE_FROM] + [iou, drawn, iou, drawn]
            if args.tell_looks:
                told = [
                    told_kept(batch.frames, truth_shapes, scripts),
                    paint_kept(look_distances(batch.frames, batch.frames, scripts)),
                    *place_cells(batch.frames, batch.frames, scripts),
                ]
                truth_shape_cells[-2:-2] = told
                truth_shape_cells += told
        noise = torch.randn(batch.frames.shape, generator=torch.Generator().manual_seed(0))
        median = batch.frames.median(dim=-1, keepdim=True).values
        character = ((batch.frames - median).norm(dim=2, keepdim=True) > 0.3).expand_as(batch.frames)
        cells, shape_cells = [], []
        for t in SHAPE_LEVELS:
            shape_cells.append(same_shape(predict_clean(model, batch, t, noise), truth_shapes, scripts))
        for t in FLOOR_LEVELS:
            pred = predict_clean(model, batch, t, noise)
            cells.append(errors(pred, batch.frames, character))
            if t == FLOOR_LEVELS[0]:
                rows.append(strip(pred))
                floor_roughness = f"{background_stats(pred)[1]:.4f}"
        cells.append(floor_roughness)
        for start in RESAMPLE_FROM:
            pred = resample(model, batch, start, args.steps, args.eta, args.deterministic_below)
            cells.append(errors(pred, batch.frames, character))
            shape_cells.append(same_shape(pred, truth_shapes, scripts))
            if start == RESAMPLE_FROM[-1]:
                rows.append(strip(pred))
        for mode in ("joint", "autoregressive"):
            frames = generate_scenes(model, scripts, mode=mode, seed=0, tell_looks=tell, **sampler).frames
            chroma, rough = background_stats(frames)
            cells += [f"{chroma:.3f}", f"{rough:.4f}"]
            shape_cells += drawn_cells(frames, scripts)
            if args.tell_looks:
                shape_cells += (
                    [
                        told_kept(frames, truth_shapes, scripts),
                        paint_kept(look_distances(frames, batch.frames, scripts)),
                    ]
                    if tell
                    else ["not told", "not told"]
                ) + place_cells(frames, batch.frames, scripts)
        print(f"| {path} | {' | '.join(cells)} |", flush=True)
        shape_rows.append(f"| {path} | {' | '.join(shape_cells)} |")
    print(truth_cells)
    print()
    told_column = ()
    if args.tell_looks:
        told_column = (
            "told shape, intro / later",
            "look nearest the truth's",
            "place nearest",
            "place distance",
        )
    print(
        table_head(
            [f"same shape, one step at t={t}" for t in SHAPE_LEVELS]
            + [f"same shape, {name}" for name in kept]
            + [
                f"{m}, {mode}"
                for mode in ("joint", "shot by shot")
                for m in ("shape IoU", "shapes drawn", *told_column)
            ]
        )
    )
    print("\n".join(shape_rows))
    print(f"| ground truth | {' | '.join(truth_shape_cells)} |")
    if args.image:
        save_strips(rows, args.image)
        print(
            f"wrote {args.image}: ground truth, then for each checkpoint its prediction at "
            f"t = {FLOOR_LEVELS[0]} and its sample from the truth noised to the last level above"
        )


if __name__ == "__main__":
    main()
