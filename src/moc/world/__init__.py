"""The shot world: procedural multi-shot scenes whose ground truth is known, for training and evaluating
memory in multi-shot video models.

A scene has a small cast of characters and a few places, each with a hidden appearance drawn at random per
scene. Captions name ids only ("Character 2", "place B"), so keeping an appearance consistent across shots
is only possible by remembering earlier shots. See ``docs/world.md``.

- scripts: :class:`Script`, :func:`random_script`, :func:`load_script` / :func:`save_script`
- looks: :func:`draw_appearance`; pixels: :func:`render` (or :meth:`Scene.render`)
- text: :func:`global_caption`, :func:`shot_caption`, :class:`Vocabulary`
- metrics: :func:`score_scene`, :func:`evaluate`, :class:`Report`
- data: :class:`WorldStream`, :func:`eval_set`, :class:`Batch`, :class:`DataConfig`
"""

from moc.world.appearance import Appearance, CharacterLook, PlaceLook, draw_appearance
from moc.world.captions import Vocabulary, global_caption, shot_caption, shot_captions
from moc.world.data import EVAL_SEED_OFFSET, Batch, DataConfig, WorldStream, eval_set, make_batch
from moc.world.metrics import (
    BUCKETS,
    METRICS,
    MetricConfig,
    Report,
    SceneScores,
    evaluate,
    frames_from_tensor,
    score_scene,
    summarize,
)
from moc.world.render import Clip, default_sprite_size, render
from moc.world.scene import Scene
from moc.world.script import (
    GAP_BUCKETS,
    Action,
    Revisit,
    Script,
    ScriptConfig,
    ScriptError,
    Shot,
    dumps_script,
    gap_bucket,
    load_script,
    loads_script,
    random_script,
    save_script,
    script_from_dict,
    script_to_dict,
)

EXAMPLE_SCRIPT = "the_return.toml"
"""File name of the hand-written example script shipped in ``moc/world/examples/``."""


def example_script_path():
    """Path of the shipped hand-written example script (8 shots, three characters and places that return)."""
    from importlib import resources

    return resources.files("moc.world").joinpath("examples", EXAMPLE_SCRIPT)


__all__ = [
    "BUCKETS",
    "EVAL_SEED_OFFSET",
    "EXAMPLE_SCRIPT",
    "GAP_BUCKETS",
    "METRICS",
    "Action",
    "Appearance",
    "Batch",
    "CharacterLook",
    "Clip",
    "DataConfig",
    "MetricConfig",
    "PlaceLook",
    "Report",
    "Revisit",
    "Scene",
    "SceneScores",
    "Script",
    "ScriptConfig",
    "ScriptError",
    "Shot",
    "Vocabulary",
    "WorldStream",
    "default_sprite_size",
    "draw_appearance",
    "dumps_script",
    "eval_set",
    "evaluate",
    "example_script_path",
    "frames_from_tensor",
    "gap_bucket",
    "global_caption",
    "load_script",
    "loads_script",
    "make_batch",
    "random_script",
    "render",
    "save_script",
    "score_scene",
    "script_from_dict",
    "script_to_dict",
    "shot_caption",
    "shot_captions",
    "summarize",
]
