"""Does a model told its characters' looks (``model.look_codes``) draw them? Where along the sampler it stops.

On held-out 8-shot scenes (those of ``moc eval memory``):

* one step: the truth noised to a level ``t`` in every shot (seeded noise), and the share of whole
  characters whose clean prediction has the truth's shape (:func:`frame_quality.told_kept`: in the shots that
  introduce them / in later shots), with the looks untold, told, and told wrong (every told shape replaced by
  the next one of :data:`moc.world.appearance.SHAPES`). Told above untold means the model reads the look at
  that level; told wrong below untold means it follows it. A model without ``look_codes`` is measured
  untold only (its samples at ``w = 1`` are plain samples), to compare with one that has them.
* guided samples: joint samples from pure noise whose every step mixes the told and the untold estimate,
  ``untold + w (told - untold)`` (classifier-free guidance on the look; ``w = 1`` is the plain told sampler),
  with the told shape drawn (intro / later), how often a character's whole look is nearest its own in the
  truth (:func:`frame_quality.paint_kept`: colours and silhouette, intro / later) and how far
  (:func:`frame_quality.look_error`), the world metric
  ``shape``, the shapes drawn and, per true shape, how many of its characters are drawn with it. ``--steps``
  lists sampler step counts to try at ``w = 1``.

Usage: python benchmarks/look_probe.py CHECKPOINT [CHECKPOINT ...] [--scenes N] [--threads N]
    [--levels 0.3,0.48,0.7,0.9] [--guidance 1,3,6] [--steps 16,48] [--image PATH]
    (the image: three held-out scenes, every third frame; the truth, then for each checkpoint its told
    one-step prediction at each level)
"""

import argparse
import dataclasses

import torch
from frame_quality import (
    drawn_cells,
    kept_by_shape,
    look_distances,
    look_error,
    paint_kept,
    predict_clean,
    save_strips,
    shapes_drawn,
    strip,
    table_head,
    told_kept,
)

from moc.eval.memory import eval_scripts
from moc.generate.sampler import sample_joint
from moc.generate.scene import script_batch
from moc.train import load_model


def wrong_looks(looks: torch.Tensor, codes: int) -> torch.Tensor:
    """``looks`` with every told code (1..codes) replaced by the next one, cyclically; 0 stays 0."""
    return torch.where(looks > 0, looks % codes + 1, looks)


class LookGuided:
    """``model`` with each clean estimate guided toward the told looks: ``untold + weight (told - untold)``,
    both clamped as a sampler clamps an estimate. The samplers call it as they call the model."""

    def __init__(self, model, weight: float) -> None:
        self.model, self.weight, self.config = model, weight, model.config

    def __call__(self, *args, ids, **kwargs) -> torch.Tensor:
        told = self.model(*args, ids=ids, **kwargs).clamp(-1, 1)
        if self.weight == 1.0:
            return told
        plain = self.model(*args, ids=ids.told(False), **kwargs).clamp(-1, 1)
        return plain + self.weight * (told - plain)


def guided_sample(model, batch, weight: float, steps: int) -> torch.Tensor:
    """A joint sample from pure noise (``eta = 1``, seed 0), told, with guidance ``weight`` on the looks."""
    return sample_joint(
        LookGuided(model, weight),
        batch.text,
        batch.layout,
        tuple(batch.frames.shape[2:]),
        steps=steps,
        generator=torch.Generator().manual_seed(0),
        spec=model.default_spec(joint=True),
        eta=1.0,
        ids=batch.ids.told(True),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--scenes", type=int, default=8)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--levels", default="0.3,0.48,0.7,0.9")
    parser.add_argument("--guidance", default="1,3,6")
    parser.add_argument("--steps", default="16", help="sampler step counts tried at guidance 1")
    parser.add_argument("--image", default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    levels = [float(v) for v in args.levels.split(",")]
    runs = [(float(w), 16) for w in args.guidance.split(",")]
    runs += [(1.0, int(s)) for s in args.steps.split(",") if (1.0, int(s)) not in runs]
    scripts = eval_scripts(args.scenes, shots=8)
    print(f"{args.scenes} held-out 8-shot scenes; one step: same shape as the truth, intro / later")
    print(table_head(["looks", *(f"t={t}" for t in levels)]))
    rows, sample_lines, image_rows = [], [], []
    for path in args.checkpoints:
        model = load_model(path)
        codes = model.config.look_codes
        batch = script_batch(scripts, model)
        truth = shapes_drawn(batch.frames, scripts)
        if not image_rows:
            image_rows.append(strip(batch.frames))
        variants = {"untold": batch.ids.told(False)}
        if codes:
            variants["told"] = batch.ids.told(True)
            variants["told wrong"] = dataclasses.replace(batch.ids, looks=wrong_looks(batch.ids.looks, codes))
        noise = torch.randn(batch.frames.shape, generator=torch.Generator().manual_seed(0))
        for name, ids in variants.items():
            cells = []
            for t in levels:
                pred = predict_clean(model, dataclasses.replace(batch, ids=ids), t, noise)
                cells.append(told_kept(pred, truth, scripts))
                if name == ("told" if codes else "untold"):
                    image_rows.append(strip(pred))
            rows.append(f"| {path} | {name} | {' | '.join(cells)} |")
        for weight, steps in runs if codes else [run for run in runs if run[0] == 1.0]:
            frames = guided_sample(model, batch, weight, steps)
            iou, drawn = drawn_cells(frames, scripts)
            distances = look_distances(frames, batch.frames, scripts)
            looks = f"{paint_kept(distances)} | {look_error(distances)}"
            sample_lines.append(
                f"| {path} | {weight:g} | {steps} | {told_kept(frames, truth, scripts)} | {looks} "
                f"| {iou} | {drawn} "
                f"| {kept_by_shape(frames, truth, scripts)} |"
            )
    print("\n".join(rows))
    print()
    print("joint samples from noise, told, eta 1")
    columns = [
        "guidance w",
        "steps",
        "told shape, intro / later",
        "look nearest the truth's, intro / later",
        "look's distance from the truth's, intro / later",
        "shape IoU",
        "shapes drawn",
        "kept per shape",
    ]
    print(table_head(columns))
    print("\n".join(sample_lines))
    if args.image:
        save_strips(image_rows, args.image)


if __name__ == "__main__":
    main()
