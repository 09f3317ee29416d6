"""The training data stream: shapes, layout, determinism, resumption and held-out sets."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from moc.models.tokens import ScriptIds
from moc.world import (
    EVAL_SEED_OFFSET,
    DataConfig,
    Scene,
    ScriptConfig,
    Vocabulary,
    WorldStream,
    eval_set,
    global_caption,
    make_batch,
    shot_caption,
)
from moc.world.appearance import FEATURES, PATTERNS, SHAPES, draw_appearance
from moc.world.captions import tokenize
from moc.world.data import (
    PAINT_FEATURES,
    SCENERY_FEATURES,
    first_shots,
    intro_looks,
    lane_rows,
    measure_throughput,
    paint_features,
    scenery_features,
    token_characters,
    token_shapes,
)
from moc.world.script import PLACE_IDS, Action, Script, Shot

SMALL = DataConfig(batch_size=3)


def test_batch_contents_and_layout():
    batch = WorldStream(SMALL, seed=0).batch(0)
    b, s = 3, batch.num_shots
    total = sum(batch.shot_frames)
    c, g = SMALL.caption_tokens, SMALL.global_caption_tokens
    assert 6 <= s <= 8
    assert batch.frames.shape == (b, total, 3, 32, 32) and batch.frames.dtype == torch.float32
    assert batch.frames.min() >= -1.0 and batch.frames.max() <= 1.0
    assert batch.labels.shape == (b, total, 32, 32) and batch.labels.dtype == torch.int8
    assert batch.captions.shape == (b, s, c) and batch.global_caption.shape == (b, g)
    assert batch.text.shape == (b, g + s * c)
    assert batch.frame_shot.tolist() == [i for i, f in enumerate(batch.shot_frames) for _ in range(f)]
    # The layout packs [global][text 0][video 0][text 1][video 1]... with (32/4)^2 = 64 tokens per frame.
    assert SMALL.tokens_per_frame == 64
    assert len(batch.layout) == g + s * c + total * 64
    assert batch.layout.num_text_tokens == batch.text.shape[1]
    assert batch.layout.shots == tuple(range(s))


def test_frames_labels_and_captions_match_the_scripts():
    stream = WorldStream(SMALL, seed=4)
    batch, scenes = stream.batch(2), stream.scenes(2)
    vocab = Vocabulary.default()
    for i, scene in enumerate(scenes):
        clip = scene.render()
        assert np.allclose((batch.frames[i].permute(0, 2, 3, 1).numpy() + 1) / 2, clip.frames, atol=1e-6)
        assert np.array_equal(batch.labels[i].numpy(), clip.labels)
        assert batch.scripts[i] == scene.script and batch.seeds[i] == scene.script.seed
        assert vocab.decode(batch.global_caption[i]) == " ".join(tokenize(global_caption(scene.script)))
        for s, shot in enumerate(scene.script.shots):
            assert vocab.decode(batch.captions[i, s]) == " ".join(tokenize(shot_caption(shot)))
        assert Scene.random(batch.seeds[i], SMALL.script, shot_frames=batch.shot_frames) == scene


def test_determinism_and_resumption():
    a = WorldStream(SMALL, seed=7)
    first = [b.frames for b in _take(a, 3)]
    again = [b.frames for b in _take(WorldStream(SMALL, seed=7), 3)]
    assert all(torch.equal(x, y) for x, y in zip(first, again))
    resumed = next(iter(WorldStream(SMALL, seed=7, start=2)))
    assert torch.equal(resumed.frames, first[2])
    other = next(iter(WorldStream(SMALL, seed=8)))
    assert not torch.equal(other.frames[:, :3], first[0][:, :3])


def _take(stream, n):
    return [b for _, b in zip(range(n), stream)]


def test_held_out_sets_are_disjoint_from_training_and_fixed_by_seed():
    train = {s for i in range(20) for s in WorldStream(SMALL, seed=0).scene_seeds(i)[1]}
    held = eval_set(SMALL, seed=0, num_batches=5)
    assert len(held) == 5 and len(list(held)) == 5
    held_seeds = {s for i in range(5) for s in held.scene_seeds(i)[1]}
    assert max(train) < EVAL_SEED_OFFSET <= min(held_seeds)
    again = eval_set(SMALL, seed=0, num_batches=5)
    assert held.scene_seeds(3) == again.scene_seeds(3)
    assert eval_set(SMALL, seed=1).scene_seeds(0) != held.scene_seeds(0)
    with pytest.raises(TypeError):
        len(WorldStream(SMALL))


def test_config_validation_and_custom_sizes():
    with pytest.raises(ValueError, match="patch"):
        DataConfig(height=30, patch_size=4)
    with pytest.raises(ValueError):
        WorldStream(SMALL, split="test")
    config = DataConfig(
        batch_size=2, height=64, width=48, patch_size=8, script=ScriptConfig(num_shots=2, frames_per_shot=4)
    )
    batch = WorldStream(config).batch(0)
    assert batch.frames.shape == (2, 8, 3, 64, 48)
    assert config.tokens_per_frame == 48 and len(batch.layout) == config.global_caption_tokens + 2 * (
        config.caption_tokens + 4 * 48
    )


def test_make_batch_needs_one_shot_structure():
    scenes = [Scene.random(1, shot_frames=(3, 3)), Scene.random(2, shot_frames=(3, 4))]
    with pytest.raises(ValueError, match="shares one layout"):
        make_batch(scenes, SMALL)


def test_data_is_fast():
    # Full measurement (batch 16, 6-8 shots) is in docs/world.md; here only a loose floor.
    rate = measure_throughput(DataConfig(batch_size=4), batches=3)
    assert rate > 5.0, f"{rate:.1f} batches/s"


def test_batch_prefix_is_the_batch_of_the_first_shots():
    batch = WorldStream(SMALL, seed=0).batch(1)
    for shots in (1, 2, batch.num_shots):
        part = batch.prefix(shots)
        frames = sum(batch.shot_frames[:shots])
        assert part.num_shots == shots and part.shot_frames == batch.shot_frames[:shots]
        assert torch.equal(part.frames, batch.frames[:, :frames])
        assert torch.equal(part.labels, batch.labels[:, :frames])
        assert part.layout.segments == batch.layout.segments[: 1 + 2 * shots]
        assert part.layout.num_text_tokens == part.text.shape[1]
        assert torch.equal(part.text, batch.text[:, : part.text.shape[1]])
        assert all(len(s.shots) == shots for s in part.scripts)
        assert torch.equal(part.ids.places, batch.ids.places[:, :shots])
        assert torch.equal(part.ids.lanes, batch.ids.lanes[:, :shots])
    for bad in (0, batch.num_shots + 1):
        with pytest.raises(ValueError, match="a prefix needs"):
            batch.prefix(bad)


def test_script_ids_place_each_character_on_the_patch_rows_of_its_sprite():
    batch = WorldStream(DataConfig(batch_size=4, patch_size=8), seed=0).batch(2)
    rows = batch.frames.shape[-2] // 8
    assert batch.ids.lanes.shape == (4, batch.num_shots, rows)
    frame_shot = batch.frame_shot
    for b, script in enumerate(batch.scripts):
        assert batch.ids.places[b].tolist() == [PLACE_IDS.index(s.place) for s in script.shots]
        for s, shot in enumerate(script.shots):
            lanes = batch.ids.lanes[b, s]
            assert set(lanes.tolist()) - {0} == {c + 1 for c in shot.character_ids}
            # Every pixel a character covers lies in a patch row of that character or of none.
            labels = batch.labels[b, frame_shot == s]  # (F, H, W)
            for row in range(rows):
                seen = set(labels[:, row * 8 : (row + 1) * 8].unique().tolist()) - {-1}
                owner = int(lanes[row]) - 1
                assert seen <= ({owner} if owner >= 0 else set()) or len(seen) == 0, (b, s, row, seen)


def test_lane_rows_by_number_of_characters():
    def shot(*ids):
        return Shot(place="A", characters=tuple(Action(id=i) for i in ids), frames=2)

    script = Script(cast=(3, 7), places=("A",), shots=(shot(), shot(3), shot(3, 7), shot(7, 3)))
    assert lane_rows(script, height=32, patch_size=8, sprite_size=12).tolist() == [
        [0, 0, 0, 0],
        [0, 4, 4, 0],  # one character: a sprite centred in the frame (rows 10..21)
        [4, 4, 8, 8],
        [8, 8, 4, 4],
    ]


@pytest.mark.parametrize("patch_size", [4, 8])
def test_token_shapes_name_the_hidden_shape_under_each_token(patch_size):
    config = DataConfig(batch_size=3, patch_size=patch_size)
    stream = WorldStream(config, seed=1)
    batch = stream.batch(0)
    shapes = token_shapes(batch, patch_size)
    b, f, h, w = batch.labels.shape
    p = patch_size
    assert shapes.shape == (b, f * (h // p) * (w // p)) and shapes.dtype == torch.long
    patches = batch.labels.reshape(b, f, h // p, p, w // p, p).permute(0, 1, 2, 4, 3, 5).reshape(b, -1, p * p)
    for i, scene in enumerate(stream.scenes(0)):  # the scenes as rendered, hidden looks included
        for token in range(shapes.shape[1]):
            ids, counts = patches[i, token].unique(return_counts=True)
            shown = [int(c) for c, n in zip(ids, counts, strict=True) if c >= 0 and n >= p * p // 4]
            expected = SHAPES.index(scene.appearance.characters[shown[0]].shape) if shown else -1
            assert int(shapes[i, token]) == expected, (i, token)
    assert (shapes >= 0).any() and (shapes == -1).any()
    with pytest.raises(ValueError, match="do not split into 5x5 patches"):
        token_shapes(batch, 5)


def test_token_characters_are_the_ids_behind_token_shapes():
    batch = WorldStream(DataConfig(batch_size=3, patch_size=8), seed=1).batch(0)
    characters, shapes = token_characters(batch, 8), token_shapes(batch, 8)
    assert torch.equal(characters >= 0, shapes >= 0)
    for i, script in enumerate(batch.scripts):
        assert set(characters[i].unique().tolist()) <= {-1, *script.cast}
        looks = draw_appearance(script).characters
        for cid in script.cast:
            assert (shapes[i, characters[i] == cid] == SHAPES.index(looks[cid].shape)).all()


def test_first_shots_name_the_shot_that_introduces_each_character():
    def shot(*ids):
        return Shot(place="A", characters=tuple(Action(id=i) for i in ids), frames=2)

    script = Script(cast=(3, 7, 9), places=("A",), shots=(shot(), shot(3), shot(3, 7), shot(7, 3)))
    assert first_shots(script) == {3: 1, 7: 2}  # 9 is cast but never appears


def test_every_token_showing_a_character_where_it_enters_is_told_its_look():
    # A sprite spans two patch rows; its lane must cover both, or half its tokens would go untold.
    config = DataConfig(batch_size=12, patch_size=8)
    batch = WorldStream(config, seed=5).batch(0)
    characters = token_characters(batch, 8)
    rows, cols = config.height // 8, config.width // 8
    per_token = batch.ids.looks[:, batch.frame_shot].flatten(1).repeat_interleave(cols, dim=1)
    assert per_token.shape == characters.shape == (12, len(batch.frame_shot) * rows * cols)
    token_shot = batch.frame_shot.repeat_interleave(rows * cols)
    shown = 0
    for i, script in enumerate(batch.scripts):
        for cid, shot in first_shots(script).items():
            entering = (characters[i] == cid) & (token_shot == shot)
            assert entering.any()
            assert (per_token[i, entering] > 0).all(), (i, cid)
            shown += int(entering.sum())
    assert shown > 100


def test_intro_looks_tell_each_character_once_in_the_rows_where_it_enters():
    stream = WorldStream(DataConfig(batch_size=4, patch_size=8), seed=2)
    batch = stream.batch(0)
    looks, lanes = batch.ids.looks, batch.ids.lanes
    assert looks is not None and looks.shape == lanes.shape and looks.dtype == torch.int64
    for b, (script, scene) in enumerate(zip(batch.scripts, stream.scenes(0), strict=True)):
        entered: set[int] = set()
        for s, shot in enumerate(script.shots):
            for cid in shot.character_ids:
                rows = lanes[b, s] == cid + 1
                code = 1 + SHAPES.index(scene.appearance.characters[cid].shape)
                assert looks[b, s, rows].tolist() == [0 if cid in entered else code] * int(rows.sum())
            entered |= set(shot.character_ids)
            assert not looks[b, s, lanes[b, s] == 0].any()  # rows without a character are never told
    assert looks.any()
    part = batch.prefix(2)
    assert torch.equal(part.ids.looks, looks[:, :2])

    def shot(*ids):
        return Shot(place="A", characters=tuple(Action(id=i) for i in ids), frames=2)

    script = Script(cast=(3, 7), places=("A",), shots=(shot(), shot(3), shot(3, 7), shot(7, 3)))
    appearance = Scene.from_script(script, 0).appearance
    code = {c: 1 + SHAPES.index(appearance.characters[c].shape) for c in (3, 7)}
    rows = lane_rows(script, height=32, patch_size=8, sprite_size=12)
    assert intro_looks(script, appearance, rows).tolist() == [
        [0, 0, 0, 0],
        [0, code[3], code[3], 0],
        [0, 0, code[7], code[7]],  # 3 entered one shot earlier: only 7 is told
        [0, 0, 0, 0],
    ]


def test_intro_paint_tells_the_colours_and_pattern_where_the_shape_is_told():
    stream = WorldStream(DataConfig(batch_size=4, patch_size=8), seed=2)
    batch = stream.batch(0)
    looks, paint = batch.ids.looks, batch.ids.paint
    assert paint is not None and paint.shape == (*looks.shape, PAINT_FEATURES)
    assert paint.dtype == torch.float32
    told = paint.abs().sum(-1) > 0
    assert torch.equal(told, looks > 0)  # the same rows, and never an all-zero told row
    for b, (script, scene) in enumerate(zip(batch.scripts, stream.scenes(0), strict=True)):
        for cid, s in first_shots(script).items():
            look = scene.appearance.characters[cid]
            rows = paint[b, s][batch.ids.lanes[b, s] == cid + 1]
            expected = paint_features(look)
            assert np.allclose(rows.numpy(), expected) and rows.shape[0] > 0
            np.testing.assert_allclose(expected[:3], np.asarray(look.body) * 2 - 1, rtol=0, atol=1e-6)
            np.testing.assert_allclose(expected[3:6], np.asarray(look.accent) * 2 - 1, rtol=0, atol=1e-6)
            assert expected[6:].tolist() == [float(p == look.pattern) for p in PATTERNS]
    assert torch.equal(batch.prefix(2).ids.paint, paint[:, :2])
    half = batch.ids.told(torch.tensor([True, False, True, False]))
    assert torch.equal(half.paint[0], paint[0]) and not half.paint[1].any()
    assert batch.ids.told(False).paint is None


def test_intro_scenery_tells_each_place_once_as_the_world_renders_its_rows():
    stream = WorldStream(DataConfig(batch_size=4, patch_size=8), seed=3)
    batch = stream.batch(0)
    scenery = batch.ids.scenery
    b, s, r = batch.ids.lanes.shape
    assert scenery is not None and scenery.shape == (b, s, r, SCENERY_FEATURES)
    starts = np.cumsum((0, *batch.shot_frames))
    for i, (script, scene) in enumerate(zip(batch.scripts, stream.scenes(0), strict=True)):
        places = [shot.place for shot in script.shots]
        for shot, place in enumerate(places):
            told = scenery[i, shot]
            if place in places[:shot]:  # a revisit: told nothing, kept from memory
                assert not told.any()
                continue
            look = scene.appearance.places[place]
            expected = scenery_features(look, 32, 32, 8)
            np.testing.assert_allclose(told.numpy(), expected, rtol=0, atol=1e-6)
            assert (np.abs(expected).sum(-1) > 0).all()
            np.testing.assert_allclose(expected[0, 3:6], np.asarray(look.sky) * 2 - 1, rtol=0, atol=1e-6)
            assert expected[0, 13:16].tolist() == [float(f == look.feature) for f in FEATURES]
            # The row colours are the rendered frame's, in every patch row no character stands in (a pan
            # scrolls whole periods of the texture, which keeps a row's mean).
            frame = batch.frames[i, starts[shot]]  # (3, H, W) in [-1, 1]
            rows = frame.reshape(3, r, 8 * 32).mean(-1).T  # (R, 3)
            empty = batch.ids.lanes[i, shot] == 0
            np.testing.assert_allclose(told[empty, :3].numpy(), rows[empty].numpy(), rtol=0, atol=1e-5)
    assert torch.equal(batch.prefix(2).ids.scenery, scenery[:, :2])
    half = batch.ids.told(torch.tensor([True, False, True, False]))
    assert torch.equal(half.scenery[2], scenery[2]) and not half.scenery[3].any()
    assert batch.ids.told(False).scenery is None
    # Some places told, the others not: an untold place's first shot is told nothing, the rest unchanged.
    told_places = torch.zeros(b, 10, dtype=torch.bool)
    told_places[:, ::2] = True  # places A, C, E, G, I
    some = batch.ids.places_told(told_places)
    even = (batch.ids.places % 2 == 0)[..., None, None]
    assert torch.equal(some.scenery, scenery * even) and (even.any() and (~even).any())
    assert torch.equal(some.paint, batch.ids.paint) and torch.equal(some.looks, batch.ids.looks)
    assert batch.ids.told(False).places_told(told_places).scenery is None
    with pytest.raises(ValueError, match=r"told must be \(B, num_ids\) with B = 4, got \(10,\)"):
        batch.ids.places_told(told_places[0])
    with pytest.raises(ValueError, match=r"ScriptIds.scenery must have shape \(B, S, R, Q\)"):
        ScriptIds(batch.ids.places, batch.ids.lanes, scenery=scenery[:, :, :1, 0])
