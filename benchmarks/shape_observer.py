"""How well could anything tell a sprite's shape from the noisy pixels? An ideal observer, level by level.

For every character in the shot that introduces it (held-out 8-shot scenes, those of ``moc eval memory``),
the truth ``x0`` is noised as training noises it, ``x_t = (1 - t) x0 + t eps``, and six hypotheses are
scored: the same scene rendered with that character's shape replaced by each of the world's shapes
(:data:`moc.world.appearance.SHAPES`), everything else (place, positions, colours, accent pattern) as in the
truth. Under Gaussian noise the log-likelihood of a hypothesis ``h`` is ``-|x_t - (1 - t) h|^2 / (2 t^2)``;
the observer picks the most likely shape. It reads one frame of the shot, or all of them.

The *told* observer knows more than a model: the colours and the accent pattern. The *colour-blind*
observer knows only the place behind the sprite and the sprite's position (the script's own: a character's
lane and track follow from its action); it scores every (shape, pattern) pair with the body and accent
colours fitted to the noisy pixels (profile likelihood) and names the shape of the best pair. Both bound
what a denoiser can know of the shape at each level: where they are near 1 and a model's one-step estimate
draws discs, the shape is in the pixels and the model fails to read it.

Usage: python benchmarks/shape_observer.py [--scenes 16] [--levels 0.5,0.7,0.8,0.9,0.95] [--draws 4]
"""

import argparse
import dataclasses
from collections.abc import Iterator

import numpy as np

from moc.eval.memory import eval_scripts
from moc.world.appearance import SHAPES, CharacterLook, patterns_for
from moc.world.data import first_shots
from moc.world.render import character_sprite, pan_step, place_texture
from moc.world.scene import Scene

READINGS = ("one frame", "whole shot")
PAIRS = [(shape, pattern) for shape in SHAPES for pattern in patterns_for(shape)]  # as the world draws


def told_hypotheses(scene: Scene, character: int, frames: slice) -> np.ndarray:
    """``(len(SHAPES), F, H, W, 3)`` in [-1, 1]: the shot's frames with ``character`` drawn in each shape."""
    out = []
    for shape in SHAPES:
        look = dataclasses.replace(scene.appearance.characters[character], shape=shape)
        characters = {**scene.appearance.characters, character: look}
        appearance = dataclasses.replace(scene.appearance, characters=characters)
        out.append(Scene(scene.script, appearance).render().frames[frames] * 2.0 - 1.0)
    return np.stack(out)


def shot_background(scene: Scene, shot: int, height: int, width: int) -> np.ndarray:
    """``(F, H, W, 3)`` in [-1, 1]: the place behind the characters in each frame of ``shot``."""
    spec = scene.script.shots[shot]
    texture = place_texture(scene.appearance.places[spec.place], height, width)
    step = pan_step(spec)
    return np.stack([np.roll(texture, step * t, axis=1) for t in range(spec.frames)]) * 2.0 - 1.0


def pair_masks(boxes, character: int, size: int, height: int, width: int) -> np.ndarray:
    """``(len(PAIRS), 2, F, H, W)`` bool: body and accent pixels of ``character`` per (shape, pattern)."""
    out = np.zeros((len(PAIRS), 2, len(boxes), height, width), dtype=bool)
    for i, (shape, pattern) in enumerate(PAIRS):
        rgb, mask = character_sprite(CharacterLook(shape, pattern, (1.0, 0.0, 0.0), (0.0, 1.0, 0.0)), size)
        accent = mask & (rgb[..., 1] > 0.5)
        for f, frame_boxes in enumerate(boxes):
            top, left = next((t, lf) for cid, t, lf in frame_boxes if cid == character)
            y0, y1, x0, x1 = max(0, top), min(height, top + size), max(0, left), min(width, left + size)
            if y0 >= y1 or x0 >= x1:
                continue
            crop = (slice(y0 - top, y1 - top), slice(x0 - left, x1 - left))
            out[i, 0, f, y0:y1, x0:x1] = mask[crop] & ~accent[crop]
            out[i, 1, f, y0:y1, x0:x1] = accent[crop]
    return out


def colour_blind_shape(noisy: np.ndarray, background: np.ndarray, masks: np.ndarray, t: float) -> int:
    """Index in :data:`SHAPES` of the best (shape, pattern) pair, its body and accent colours fitted.

    ``noisy`` and ``background`` ``(F, H, W, 3)``, ``masks`` ``(pairs, 2, F, H, W)`` from :func:`pair_masks`.
    Every pair is scored on the same pixels (those any pair covers), so residuals compare directly.
    """
    region = masks.any(axis=(0, 1))
    ground_rss = ((noisy - (1 - t) * background) ** 2).sum(axis=-1)  # (F, H, W), the same for every pair
    residual = np.empty(len(PAIRS))
    for i, (body, accent) in enumerate(masks):
        rss = ground_rss[region & ~body & ~accent].sum()
        for part in (body, accent):
            if part.any():
                values = noisy[part]
                rss += ((values - values.mean(axis=0)) ** 2).sum()
        residual[i] = rss
    return SHAPES.index(PAIRS[int(residual.argmin())][0])


@dataclasses.dataclass(frozen=True)
class Entrance:
    """One character in the shot that introduces it, with what the observers know.

    ``frames``: the shot's frames in the scene; ``truth`` ``(F, H, W, 3)`` in [-1, 1] and ``labels``
    ``(F, H, W)``: those frames and their labels; ``background``: :func:`shot_background`; ``masks``:
    :func:`pair_masks`."""

    scene: Scene
    character: int
    frames: slice
    truth: np.ndarray
    labels: np.ndarray
    background: np.ndarray
    masks: np.ndarray

    @property
    def look(self) -> CharacterLook:
        return self.scene.appearance.characters[self.character]


def entrances(scripts) -> Iterator[Entrance]:
    """Every character of ``scripts`` in the shot that introduces it (:func:`~moc.world.data.first_shots`)."""
    for script in scripts:
        scene = Scene.from_script(script)
        clip = scene.render()
        height, width = clip.frames.shape[1:3]
        starts = np.concatenate([[0], np.cumsum(script.shot_frames)])
        for character, shot in first_shots(script).items():
            frames = slice(int(starts[shot]), int(starts[shot + 1]))
            yield Entrance(
                scene,
                character,
                frames,
                truth=clip.frames[frames] * 2.0 - 1.0,
                labels=clip.labels[frames],
                background=shot_background(scene, shot, height, width),
                masks=pair_masks(clip.boxes[frames], character, clip.sprite_size, height, width),
            )


def observe(scripts, levels: list[float], draws: int, seed: int = 0) -> dict[tuple[str, str, float], float]:
    """Accuracy per (observer, reading, level): observer ``"told"`` or ``"colour-blind"``, reading
    ``"one frame"`` or ``"whole shot"``."""
    rng = np.random.default_rng(seed)
    hits: dict[tuple[str, str, float], list[bool]] = {}
    for entrance in entrances(scripts):
        candidates = told_hypotheses(entrance.scene, entrance.character, entrance.frames)
        truth = SHAPES.index(entrance.look.shape)
        x0, background, masks = entrance.truth, entrance.background, entrance.masks
        for t in levels:
            for _ in range(draws):
                noisy = (1 - t) * x0 + t * rng.standard_normal(x0.shape)
                # (shapes, frames): squared distance per frame; the hypotheses differ only near the sprite
                dist = ((noisy[None] - (1 - t) * candidates) ** 2).sum(axis=(2, 3, 4))
                f = int(rng.integers(dist.shape[1]))
                named = {
                    ("told", "one frame"): int(dist[:, f].argmin()),
                    ("told", "whole shot"): int(dist.sum(1).argmin()),
                    ("colour-blind", "one frame"): colour_blind_shape(
                        noisy[f : f + 1], background[f : f + 1], masks[:, :, f : f + 1], t
                    ),
                    ("colour-blind", "whole shot"): colour_blind_shape(noisy, background, masks, t),
                }
                for (observer, reading), shape in named.items():
                    hits.setdefault((observer, reading, t), []).append(shape == truth)
    return {key: float(np.mean(v)) for key, v in hits.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=16)
    parser.add_argument("--levels", default="0.5,0.7,0.8,0.9,0.95")
    parser.add_argument("--draws", type=int, default=4, help="noise draws per character and level")
    args = parser.parse_args()
    levels = [float(v) for v in args.levels.split(",")]
    scripts = eval_scripts(args.scenes, shots=8)
    accuracy = observe(scripts, levels, args.draws)
    print(
        f"{args.scenes} held-out 8-shot scenes, intro shots, {args.draws} noise draws each: ideal observer's"
    )
    print("share of characters whose shape it names (chance 1/6)")
    print("| observer | reading | " + " | ".join(f"t={t}" for t in levels) + " |")
    print("|---|---|" + "---|" * len(levels))
    for observer in ("told", "colour-blind"):
        for reading in READINGS:
            cells = " | ".join(f"{accuracy[(observer, reading, t)]:.2f}" for t in levels)
            print(f"| {observer} | {reading} | {cells} |")


if __name__ == "__main__":
    main()
