"""A scene: a script (visible) plus its appearance (hidden)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from moc.world.appearance import Appearance, draw_appearance
from moc.world.render import Clip, render
from moc.world.script import Script, ScriptConfig, load_script, random_script


@dataclass(frozen=True)
class Scene:
    """A script and the hidden appearance of its ids.

    Example:
        >>> scene = Scene.random(7)
        >>> clip = scene.render()
        >>> clip.frames.shape[1:]
        (32, 32, 3)
    """

    script: Script
    appearance: Appearance

    @classmethod
    def random(
        cls, seed: int, config: ScriptConfig | None = None, *, shot_frames: Sequence[int] | None = None
    ) -> Scene:
        """A random scene: the script from ``random_script(seed, ...)``, the looks from the same seed."""
        script = random_script(int(seed), config, shot_frames=shot_frames)
        return cls(script, draw_appearance(script))

    @classmethod
    def from_script(cls, script: Script, seed: int | None = None) -> Scene:
        """A scene for a given script; ``seed`` (default: ``script.seed``) draws the looks."""
        return cls(script, draw_appearance(script, script.seed if seed is None else seed))

    @classmethod
    def load(cls, path: str | Path, seed: int | None = None) -> Scene:
        """A scene from a script file (see :func:`moc.world.load_script`)."""
        return cls.from_script(load_script(path), seed)

    def render(self, *, height: int = 32, width: int = 32, sprite_size: int | None = None) -> Clip:
        """Render the scene (see :func:`moc.world.render`)."""
        return render(self.script, self.appearance, height=height, width=width, sprite_size=sprite_size)


__all__ = ["Scene"]
