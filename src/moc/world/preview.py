"""Pictures of a scene for people: a contact sheet (PNG), a GIF and an MP4.

The contact sheet has one row per shot and one column per frame, frames upscaled with nearest-neighbour
so 32x32 pixels stay crisp, the caption beside each row, and a note of who and what comes back after how
many shots: the reason a model needs memory.
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from moc.world.captions import global_caption, shot_caption
from moc.world.render import Clip
from moc.world.scene import Scene
from moc.world.script import Script, dumps_script

_INK = (30, 30, 30)
_MUTED = (110, 110, 110)
_ACCENT = (170, 40, 40)
_PAPER = (250, 250, 247)


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    # matplotlib ships DejaVu Sans, so a real font is always there without any download.
    try:
        import matplotlib

        return ImageFont.truetype(str(Path(matplotlib.get_data_path()) / "fonts/ttf/DejaVuSans.ttf"), size)
    except (ImportError, OSError):
        return ImageFont.load_default(size=size)


def upscale(frame: np.ndarray, scale: int) -> np.ndarray:
    """Nearest-neighbour upscaling of an ``(H, W, C)`` image by an integer factor."""
    return np.repeat(np.repeat(frame, scale, axis=0), scale, axis=1)


def memory_notes(script: Script) -> list[str]:
    """Per shot, what comes back and after how many shots, and what is new (for people reading a preview)."""
    notes = []
    for s, shot in enumerate(script.shots):
        back, new = [], []
        ids = [("place", shot.place, script.place_shots(shot.place))]
        ids += [("Character", c, script.character_shots(c)) for c in shot.character_ids]
        for kind, key, shots in ids:
            earlier = [t for t in shots if t < s]
            name = f"{kind} {key}"
            if earlier:
                gap = s - earlier[-1]
                back.append(f"{name} (last seen {gap} shot{'s' if gap > 1 else ''} ago, shot {earlier[-1]})")
            else:
                new.append(name)
        parts = []
        if back:
            parts.append("back: " + ", ".join(back))
        if new:
            parts.append("new: " + ", ".join(new))
        notes.append("; ".join(parts))
    return notes


def contact_sheet(scene: Scene, clip: Clip, *, scale: int | None = None) -> Image.Image:
    """One row per shot (frames as columns), the caption and the memory note beside each row.

    Args:
        scene: the scene (its script gives the captions).
        clip: its rendering.
        scale: integer upscaling of the frames (default: frames at least 96 pixels tall).
    """
    script = scene.script
    frames = clip.to_uint8()
    height, width = frames.shape[1:3]
    scale = scale or max(1, math.ceil(96 / max(height, width)))
    tile_h, tile_w = height * scale, width * scale
    gap, label_w, text_w, pad = 4, 70, 560, 12
    columns = max(script.shot_frames)
    title_font, font, small = _font(16), _font(13), _font(11)
    header = [
        script.title or "scene",
        f"Global caption: {global_caption(script)}",
        f"appearance seed {script.seed}",
    ]
    header_h = 24 + 18 * (len(header) - 1) + 8
    row_h = max(tile_h, 70)
    sheet_w = pad + label_w + columns * (tile_w + gap) + text_w + pad
    sheet_h = header_h + len(script.shots) * (row_h + 2 * gap) + pad
    sheet = Image.new("RGB", (sheet_w, sheet_h), _PAPER)
    draw = ImageDraw.Draw(sheet)
    draw.text((pad, 6), header[0], fill=_INK, font=title_font)
    for i, line in enumerate(header[1:]):
        draw.text((pad, 28 + 18 * i), line, fill=_MUTED if i else _INK, font=font)
    notes = memory_notes(script)
    f0 = 0
    for s, shot in enumerate(script.shots):
        y = header_h + s * (row_h + 2 * gap)
        draw.line([(pad, y - gap), (sheet_w - pad, y - gap)], fill=(215, 215, 210))
        draw.text((pad, y + 4), f"shot {s}", fill=_INK, font=font)
        draw.text((pad, y + 22), f"place {shot.place}", fill=_MUTED, font=small)
        draw.text((pad, y + 36), f"{shot.frames} frames", fill=_MUTED, font=small)
        for t in range(shot.frames):
            x = pad + label_w + t * (tile_w + gap)
            sheet.paste(Image.fromarray(upscale(frames[f0 + t], scale)), (x, y))
        text_x = pad + label_w + columns * (tile_w + gap) + 6
        lines = textwrap.wrap(shot_caption(shot), 70)
        for i, line in enumerate(lines):
            draw.text((text_x, y + 4 + 17 * i), line, fill=_INK, font=font)
        for i, line in enumerate(textwrap.wrap(notes[s], 88)):
            draw.text((text_x, y + 8 + 17 * len(lines) + 14 * i), line, fill=_ACCENT, font=small)
        f0 += shot.frames
    return sheet


def video_frames(scene: Scene, clip: Clip, *, scale: int = 8) -> list[np.ndarray]:
    """Frames for a GIF/MP4: each upscaled frame with the shot's caption in a bar underneath.

    Sizes are rounded up to multiples of 16 so video encoders take them as they are.
    """
    frames = clip.to_uint8()
    height, width = frames.shape[1:3]
    out_w = math.ceil(width * scale / 16) * 16
    font = _font(max(10, min(14, out_w // 24)))
    chars = max(20, int(out_w / (font.size * 0.55)))
    captions = [
        textwrap.wrap(f"shot {s}: {shot_caption(shot)}", chars) for s, shot in enumerate(scene.script.shots)
    ]
    bar = 8 + (font.size + 4) * max(len(c) for c in captions)
    out_h = math.ceil((height * scale + bar) / 16) * 16
    out = []
    for f, frame in enumerate(frames):
        canvas = Image.new("RGB", (out_w, out_h), (20, 20, 20))
        canvas.paste(Image.fromarray(upscale(frame, scale)), ((out_w - width * scale) // 2, 0))
        draw = ImageDraw.Draw(canvas)
        for i, line in enumerate(captions[int(clip.frame_shot[f])]):
            draw.text((6, height * scale + 4 + (font.size + 4) * i), line, fill=(235, 235, 235), font=font)
        out.append(np.asarray(canvas))
    return out


def write_gif(frames: list[np.ndarray], path: str | Path, fps: float = 4.0) -> Path:
    """Write a looping GIF (via Pillow)."""
    path = Path(path)
    images = [Image.fromarray(f) for f in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0)
    return path


def write_mp4(frames: list[np.ndarray], path: str | Path, fps: float = 4.0) -> Path:
    """Write an H.264 MP4 with the ffmpeg binary bundled by ``imageio-ffmpeg`` (no system ffmpeg needed)."""
    import imageio.v2 as imageio

    path = Path(path)
    with imageio.get_writer(
        path, fps=fps, codec="libx264", pixelformat="yuv420p", macro_block_size=16, ffmpeg_log_level="error"
    ) as writer:
        for frame in frames:
            writer.append_data(frame)
    return path


def write_preview(
    scene: Scene,
    out: str | Path,
    *,
    height: int = 32,
    width: int = 32,
    sprite_size: int | None = None,
    fps: float = 4.0,
    video_scale: int = 8,
) -> dict[str, Path]:
    """Render ``scene``; write scene.mp4, scene.gif, contact_sheet.png and script.toml into ``out``.

    Returns:
        The written paths by kind (``"mp4"``, ``"gif"``, ``"png"``, ``"script"``).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    clip = scene.render(height=height, width=width, sprite_size=sprite_size)
    frames = video_frames(scene, clip, scale=video_scale)
    paths = {
        "mp4": write_mp4(frames, out / "scene.mp4", fps),
        "gif": write_gif(frames, out / "scene.gif", fps),
        "png": out / "contact_sheet.png",
        "script": out / "script.toml",
    }
    contact_sheet(scene, clip).save(paths["png"])
    paths["script"].write_text(dumps_script(scene.script, "toml"), encoding="utf-8")
    return paths


__all__ = [
    "contact_sheet",
    "memory_notes",
    "upscale",
    "video_frames",
    "write_gif",
    "write_mp4",
    "write_preview",
]
