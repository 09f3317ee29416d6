"""benchmarks/told_samples.py: --mistakes names what each true shape was drawn as, and where."""

from frame_quality import shapes_drawn
from told_samples import mistakes

from moc.eval.memory import eval_scripts
from moc.generate.scene import script_batch
from moc.models import ModelConfig, MultiShotDiT


def test_mistakes_lists_each_shape_drawn_otherwise_with_its_scene_shot_and_character():
    scripts = eval_scripts(2, shots=3)
    batch = script_batch(scripts, MultiShotDiT(ModelConfig(width=32, depth=1, heads=2)))
    truth = shapes_drawn(batch.frames, scripts)
    assert mistakes(batch.frames, truth, scripts) == ""  # the truth draws every shape as itself
    assert truth[0] is not None  # the first character of these scripts is whole in its first shot
    other = "ring" if truth[0] != "ring" else "circle"
    claimed = [other, *truth[1:]]
    scene, shot = next(
        (n, s) for n, script in enumerate(scripts) for s, sh in enumerate(script.shots) if sh.characters
    )
    cid = min(a.id for a in scripts[scene].shots[shot].characters)
    assert mistakes(batch.frames, claimed, scripts) == f"  {other} as {truth[0]} 1: s{scene}/{shot}/c{cid}"
