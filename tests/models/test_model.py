"""The multi-shot DiT: shapes for every attention mode, dense equivalence, cache rows, window plan, cost."""

from __future__ import annotations

import pytest
import torch

from moc.config import MoCConfig
from moc.layout import VIDEO
from moc.models import (
    ATTENTION_MODES,
    AttentionRecord,
    AttentionSpec,
    KVCache,
    ModelConfig,
    MultiShotDiT,
    model_cost,
)
from moc.models.attention import attend
from moc.models.dit import InputGate, rope_tables
from moc.models.tokens import ScriptIds
from moc.routing.window import previous_shot_plan
from tests.models.helpers import tiny_batch, tiny_config, tiny_model


@pytest.mark.parametrize("mode", ATTENTION_MODES)
@pytest.mark.parametrize("training", [False, True])
@pytest.mark.parametrize(
    ("decoder", "stem", "refiner"),
    [((0, "mlp"), 0, 0), ((20, "mlp"), 5, 0), ((6, "conv"), 0, 0), ((4, "unet"), 3, 0), ((20, "mlp"), 0, 4)],
)
@pytest.mark.parametrize("gate", [0, 3])
def test_shapes_every_mode(mode, training, decoder, stem, refiner, gate):
    batch = tiny_batch()
    moc = MoCConfig(top_k=2, drop_off=0.3, drop_in=0.5)
    width, kind = decoder
    model = tiny_model(
        attention=mode,
        moc=moc,
        decoder_width=width,
        decoder_kind=kind,
        stem_width=stem,
        refiner_width=refiner,
        input_gate=gate,
    ).train(training)
    t = torch.rand(len(batch), batch.num_shots)
    out = model(batch.frames, t, batch.text, batch.layout, generator=torch.Generator().manual_seed(0))
    assert out.shape == batch.frames.shape
    assert torch.isfinite(out).all()
    if training:
        out.square().mean().backward()
        assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize("id_bias", [False, True])
def test_moc_with_all_chunks_and_no_causality_equals_dense(id_bias):
    batch = tiny_batch(shots=3)
    model = tiny_model(dtype=torch.float64, script_ids=id_bias, id_bias=id_bias)
    t = torch.rand(len(batch), batch.num_shots, dtype=torch.float64)
    frames = batch.frames.double()
    everything = MoCConfig(top_k=10_000, causal=False)

    def run(spec):
        return model(frames, t, batch.text, batch.layout, spec=spec, ids=batch.ids)

    moc = run(AttentionSpec("moc", everything, "reference"))
    varlen = run(AttentionSpec("moc", everything, "varlen"))
    dense = run(AttentionSpec("dense", everything))
    torch.testing.assert_close(moc, dense, rtol=0, atol=1e-10)
    torch.testing.assert_close(varlen, dense, rtol=0, atol=1e-10)
    # ...and routing with a small top_k really changes the function (the comparison can fail).
    sparse = run(AttentionSpec("moc", MoCConfig(top_k=1)))
    assert (sparse - dense).abs().max() > 1e-4


def test_id_bias_adds_its_gains_to_the_logits_of_same_id_pairs():
    """The appended id dimensions give exactly ``scale * q.k + gain_character[h] * [same character]
    + gain_place[h] * [same place]`` between video tokens, and nothing for text tokens."""
    batch = tiny_batch(batch_size=2, shots=3)
    model = tiny_model(dtype=torch.float64, script_ids=True, id_bias=True)
    block = model.blocks[0]
    with torch.no_grad():
        block.id_gain.copy_(torch.tensor([[1.5, -0.5], [0.25, 2.0]]))
    table = model.table(batch.layout, batch.frames.shape[-2:])
    is_video = table.is_video
    shot, row = table.shot[is_video], table.position[is_video, 1]
    codes = model._id_codes(batch.ids.places[:, shot], batch.ids.lanes[:, shot, row], is_video, torch.float64)
    b, h, n, d = 2, 2, table.num_tokens, 12
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(b, h, n, d, generator=gen, dtype=torch.float64) for _ in range(3))
    scale = d**-0.5
    qa, ka, va = block._with_id_codes(q, k, v, codes, scale)
    out = attend(qa, ka, va, batch.layout, AttentionSpec("dense", MoCConfig()), scale=scale)[..., :d]

    character = torch.zeros(b, n, dtype=torch.long)
    place = torch.full((b, n), -1)
    character[:, is_video] = batch.ids.lanes[:, shot, row]
    place[:, is_video] = batch.ids.places[:, shot]
    same_character = (character[:, :, None] == character[:, None]) & (character[:, :, None] > 0)
    same_place = (place[:, :, None] == place[:, None]) & (place[:, :, None] >= 0)
    assert same_character.any() and same_place.any() and not same_place.all()
    gain = block.id_gain.detach()[:, None, :, None, None]  # (kind, 1, H, 1, 1)
    bias = gain[0] * same_character[:, None] + gain[1] * same_place[:, None]
    expected = torch.softmax(scale * q @ k.transpose(-1, -2) + bias, dim=-1) @ v
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("mode", ATTENTION_MODES)
def test_suffix_rows_equal_full_rows(mode):
    """Attention of the last rows against all keys (the cache path) equals those rows of the full call."""
    batch = tiny_batch(batch_size=1, shots=3)
    layout = batch.layout
    gen = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(1, 2, layout.num_tokens, 6, generator=gen, dtype=torch.float64) for _ in range(3))
    spec = AttentionSpec(mode, MoCConfig(top_k=1), "reference")
    full = attend(q, k, v, layout, spec)
    for start in (layout.offsets[2], layout.offsets[4]):
        rows = attend(q[:, :, start:], k, v, layout, spec)
        torch.testing.assert_close(rows, full[:, :, start:], rtol=0, atol=1e-12)


def test_window_plan_routes_to_previous_shot_only():
    batch = tiny_batch(batch_size=1, shots=4)
    layout = batch.layout
    config = MoCConfig(top_k=1)
    plan = previous_shot_plan(layout, config, batch_size=1, heads=2, head_dim=4, device=torch.device("cpu"))
    chunks = layout.chunks(None)
    for token in range(layout.num_tokens):
        c = int(chunks.token_chunk[token])
        chosen = sorted(x for x in plan.selected[0, 0, token].tolist() if x >= 0)
        shot = int(chunks.shot[c])
        expected = (
            [
                j
                for j in range(chunks.num_chunks)
                if int(chunks.kind[j]) == VIDEO and int(chunks.shot[j]) == shot - 1
            ]
            if int(chunks.kind[c]) == VIDEO
            else []
        )
        assert chosen == expected


def test_cache_runs_only_new_tokens_and_commits_once_per_call():
    batch = tiny_batch(batch_size=1, shots=2)
    model = tiny_model()
    layout = batch.layout
    first = type(layout)(layout.segments[:3])  # global caption, caption 0, video 0
    cache = KVCache()
    f0 = batch.shot_frames[0]
    t = torch.zeros(1, 2)
    text0 = batch.text[:, : first.num_text_tokens]
    model(batch.frames[:, :f0], t[:, :1], text0, first, cache=cache, commit=True)
    assert cache.length == first.num_tokens and len(cache.keys) == model.config.depth
    out = model(batch.frames[:, f0:], t, batch.text[:, first.num_text_tokens :], layout, cache=cache)
    assert out.shape == batch.frames[:, f0:].shape
    assert cache.length == first.num_tokens  # not committed
    with pytest.raises(ValueError, match="frames"):
        model(batch.frames, t, batch.text[:, first.num_text_tokens :], layout, cache=cache)


def test_script_ids_are_checked_and_shape_the_prediction():
    batch = tiny_batch(batch_size=2, shots=3)
    t = torch.rand(2, batch.num_shots)
    model = tiny_model(script_ids=True)
    out = model(batch.frames, t, batch.text, batch.layout, ids=batch.ids)
    swapped = ScriptIds(batch.ids.places.flip(0), batch.ids.lanes.flip(0))
    assert (model(batch.frames, t, batch.text, batch.layout, ids=swapped) - out).abs().max() > 1e-4
    with pytest.raises(ValueError, match="reads the script's ids"):
        model(batch.frames, t, batch.text, batch.layout)
    with pytest.raises(ValueError, match=r"ids must be places \(B, S\) = \(2, 3\)"):
        model(batch.frames, t, batch.text, batch.layout, ids=batch.ids.prefix(2))
    too_big = ScriptIds(batch.ids.places, batch.ids.lanes + 11)
    with pytest.raises(ValueError, match=r"ids.lanes must lie in \[0, 11\)"):
        model(batch.frames, t, batch.text, batch.layout, ids=too_big)
    # A model without ids ignores them.
    plain = tiny_model()
    torch.testing.assert_close(
        plain(batch.frames, t, batch.text, batch.layout, ids=swapped),
        plain(batch.frames, t, batch.text, batch.layout),
    )


@pytest.mark.parametrize("id_bias", [False, True])
def test_shot_by_shot_runs_read_the_ids_of_their_own_shot(id_bias):
    """With cached history, a run depends on its own shot's ids and not on the cached shots' ids (those are
    in the cached keys, from the commit)."""
    batch = tiny_batch(batch_size=1, shots=2)
    model = tiny_model(script_ids=True, id_bias=id_bias)
    layout = batch.layout
    first = type(layout)(layout.segments[:3])
    f0, n0 = batch.shot_frames[0], first.num_text_tokens
    t = torch.tensor([[0.0, 0.7]])
    cache = KVCache()
    model(
        batch.frames[:, :f0],
        t[:, :1],
        batch.text[:, :n0],
        first,
        cache=cache,
        commit=True,
        ids=batch.ids.prefix(1),
    )

    def run(places, lanes):
        ids = ScriptIds(torch.tensor([places]), torch.tensor([lanes]))
        return model(batch.frames[:, f0:], t, batch.text[:, n0:], layout, cache=cache, ids=ids)

    base = run([0, 1], [[0, 1, 1, 0], [2, 2, 3, 3]])
    torch.testing.assert_close(run([5, 1], [[4, 4, 4, 4], [2, 2, 3, 3]]), base, rtol=0, atol=0)
    assert (run([0, 1], [[0, 1, 1, 0], [2, 2, 3, 0]]) - base).abs().max() > 1e-4
    assert (run([0, 2], [[0, 1, 1, 0], [2, 2, 3, 3]]) - base).abs().max() > 1e-4


def test_time_nope_pairs_leave_the_lowest_time_frequencies_unrotated():
    position = torch.tensor([[0, 1, 2], [9, 0, 3], [57, 3, 1]])
    cos0, sin0 = rope_tables(position, 32, 100.0)
    cos2, sin2 = rope_tables(position, 32, 100.0, time_nope_pairs=2)
    time_pairs = 16 - 2 * 5
    nope = slice(time_pairs - 2, time_pairs)
    assert torch.equal(cos2[:, nope], torch.ones(3, 2)) and torch.equal(sin2[:, nope], torch.zeros(3, 2))
    keep = torch.ones(16, dtype=torch.bool)
    keep[nope] = False
    assert torch.equal(cos2[:, keep], cos0[:, keep]) and torch.equal(sin2[:, keep], sin0[:, keep])
    assert not torch.equal(cos0[:, nope], cos2[:, nope])
    with pytest.raises(ValueError, match=r"time_nope_pairs must be an int in \[0, 6\]"):
        ModelConfig(width=128, heads=4, time_nope_pairs=7)


def test_model_cost_counts_attention_from_plans():
    batch = tiny_batch(batch_size=1, shots=4)
    model = tiny_model()
    t = torch.rand(1, batch.num_shots)
    dense = model_cost(model, batch.frames, t, batch.text, batch.layout, AttentionSpec("dense", MoCConfig()))
    local = model_cost(model, batch.frames, t, batch.text, batch.layout, AttentionSpec("local", MoCConfig()))
    moc = model_cost(
        model, batch.frames, t, batch.text, batch.layout, AttentionSpec("moc", MoCConfig(top_k=1))
    )
    d = model.config.head_dim
    L = batch.layout.num_tokens
    assert dense.attention_flops == 4 * d * L * L * model.config.heads * model.config.depth
    assert dense.density == 1.0 and local.attention_flops < moc.attention_flops < dense.attention_flops
    assert local.routing_flops == 0 < moc.routing_flops
    assert dense.parameters == sum(p.numel() for p in model.parameters())
    assert dense.conv_flops == 0 and dense.total_flops == dense.linear_flops + dense.attention_flops


def test_model_cost_counts_the_refiners_convolutions_per_pixel():
    batch = tiny_batch(batch_size=2, shots=3)
    hidden, codes, c = 4, 8, batch.frames.shape[2]
    model = tiny_model(decoder_width=8, refiner_width=hidden)
    cost = model_cost(model, batch.frames, torch.rand(2, 3), batch.text, batch.layout)
    frames, _, h, w = batch.frames.shape[1:]
    full, half = h * w, (h // 2) * (w // 2)
    wide = 2 * hidden
    per_frame = 2 * (
        (2 * c + codes + 1) * 9 * hidden * full  # first 3x3
        + hidden * 9 * wide * half  # stride-2 3x3
        + 2 * wide * 9 * wide * half  # two 3x3 at half resolution
        + wide * hidden * half  # 1x1 back
        + hidden * 9 * c * full  # last 3x3
    )
    assert cost.conv_flops == frames * per_frame


def test_input_gate_blends_the_estimate_toward_the_rescaled_input():
    noisy, estimate = torch.randn(2, 3, 3, 8, 8), torch.randn(2, 3, 3, 8, 8)
    level = torch.tensor([[0.1, 0.4, 0.9], [0.0, 0.5, 1.0]])
    gate = InputGate(3, 4)
    torch.testing.assert_close(gate(noisy, estimate, level), estimate)  # zero-started: the estimate itself
    with torch.no_grad():
        gate.convs[-1].bias.fill_(1.0)
    # Fully open: the noisy input over 1 - t, the divisor kept at 0.5 or more (finite at t = 1).
    divisor = (1 - level).clamp_min(0.5)[:, :, None, None, None]
    torch.testing.assert_close(gate(noisy, estimate, level), noisy / divisor)
    with torch.no_grad():
        gate.convs[-1].bias.fill_(0.25)
    torch.testing.assert_close(gate(noisy, estimate, level), 0.75 * estimate + 0.25 * noisy / divisor)


def test_record_accumulates_hits_per_layout():
    batch = tiny_batch(batch_size=1, shots=3)
    model = tiny_model()
    record = AttentionRecord()
    model(batch.frames, torch.rand(1, 3), batch.text, batch.layout, record=record)
    hits = record.hits[batch.layout]
    chunks = batch.layout.chunks(None)
    video_tokens = int((chunks.kind[chunks.token_chunk.long()] == VIDEO).sum())
    # causal routing: shot 0's queries have no candidates; the rest route top_k = 2 chunks each
    shot0 = batch.shot_frames[0] * batch.layout.segments[2].tokens_per_frame
    assert hits.sum() == model.config.depth * model.config.heads * 2 * (video_tokens - shot0)
    assert torch.equal(hits, hits.tril(-1))  # only earlier chunks


def test_pixel_decoder_reads_the_noisy_pixels_of_its_own_patch():
    """The decoder sees each token's own noisy patch: changing one patch's pixels changes only that patch."""
    batch = tiny_batch()
    model = tiny_model(attention="local", decoder_width=16).eval()
    # Silence the transformer path: what remains is the decoder's reading of the pixels.
    with torch.no_grad():
        model.out.weight.zero_()
        model.decoder.hidden.weight[:, : model.config.width].zero_()
    t = torch.rand(len(batch), batch.num_shots)
    before = model(batch.frames, t, batch.text, batch.layout)
    frames = batch.frames.clone()
    p = model.config.patch_size
    frames[0, 0, :, :p, :p] += 0.5
    changed = (model(frames, t, batch.text, batch.layout) - before).abs() > 0
    assert changed[0, 0, :, :p, :p].all()
    changed[0, 0, :, :p, :p] = False
    assert not changed.any()


@pytest.mark.parametrize(("kind", "near", "far"), [("conv", 3, 3), ("unet", 8, 11)])
def test_conv_decoders_read_a_pixels_neighbourhood_and_their_shots_level(kind, near, far):
    """With the transformer path silenced, one pixel's change reaches ``near`` pixels away and no further
    than ``far``, in its own frame only (conv: 3x3 three times; unet: a half-resolution path besides), and
    one shot's noise level reaches only that shot's frames."""
    batch = tiny_batch(shots=3)
    model = tiny_model(attention="local", decoder_width=8, decoder_kind=kind).eval()
    with torch.no_grad():
        for weight in (
            model.out.weight,
            model.out.bias,
            model.decoder.project.weight,
            model.decoder.project.bias,
        ):
            weight.zero_()
    t = torch.rand(len(batch), batch.num_shots)
    before = model(batch.frames, t, batch.text, batch.layout)
    frames = batch.frames.clone()
    frames[0, 1, :, 16, 16] += 0.5
    changed = ((model(frames, t, batch.text, batch.layout) - before).abs() > 0).any(dim=2)
    assert (
        changed[0, 1, 16, 16] and changed[0, 1, 16 - near, 16 + near] and changed[0, 1, 16 + near, 16 - near]
    )
    changed[0, 1, 16 - far : 17 + far, 16 - far : 17 + far] = False
    assert not changed.any()
    later = t.clone()
    later[:, 1] += 0.1
    changed = ((model(batch.frames, later, batch.text, batch.layout) - before).abs() > 0).flatten(2).any(-1)
    shot_of_frame = torch.repeat_interleave(torch.arange(batch.num_shots), torch.tensor(batch.shot_frames))
    assert torch.equal(changed, (shot_of_frame == 1).expand_as(changed))


def test_conv_stem_sees_16_pixels_per_token_in_patch_order_and_its_shots_level():
    """One pixel's change reaches exactly the stem features of the tokens whose 8x8 patch lies within 4 pixels
    of it (three 3x3 convolutions, one dilated: 9x9 pixels), in its own frame, in :func:`patchify` order. One
    shot's noise level reaches its own frames only."""
    batch = tiny_batch(shots=3)
    model = tiny_model(attention="local", stem_width=4).eval()
    with torch.no_grad():
        model.stem.project.weight.normal_()  # off its zero start
    p = model.config.patch_size
    frames_per_shot = torch.tensor(batch.shot_frames)
    t = torch.rand(len(batch), batch.num_shots)
    level = t[:, torch.repeat_interleave(torch.arange(batch.num_shots), frames_per_shot)]

    def tokens(frames, level=level):
        b, f, _, h, w = frames.shape
        return model.stem(frames, level).reshape(b, f, h // p, w // p, -1)

    before = tokens(batch.frames)
    for row, col, rows, cols in ((11, 12, [0, 1], [1, 2]), (3, 20, [0], [2, 3]), (12, 4, [1, 2], [0, 1])):
        frames = batch.frames.clone()
        frames[1, 2, 0, row, col] += 0.5
        changed = ((tokens(frames) - before).abs() > 0).any(-1)
        expected = torch.zeros_like(changed)
        expected[1, 2, rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1] = True
        assert torch.equal(changed, expected), (row, col)
    later = level.clone()
    later[:, frames_per_shot[0] : frames_per_shot[:2].sum()] += 0.1
    changed = ((tokens(batch.frames, later) - before).abs() > 0).flatten(2).any(-1)
    assert torch.equal(changed, (later != level))
    # Through the model: the stem's change reaches the output (it is added to the patch embedding).
    out = model(batch.frames, t, batch.text, batch.layout)
    with torch.no_grad():
        model.stem.project.weight.zero_()
    assert not torch.allclose(out, model(batch.frames, t, batch.text, batch.layout))


def test_bad_inputs_name_the_problem():
    batch = tiny_batch()
    model = tiny_model()
    t = torch.rand(len(batch), batch.num_shots)
    with pytest.raises(ValueError, match="one noise level per shot"):
        model(batch.frames, t[:, :1], batch.text, batch.layout)
    with pytest.raises(ValueError, match="text must be"):
        model(batch.frames, t, batch.text[:, 1:], batch.layout)
    with pytest.raises(ValueError, match="frames"):
        model(batch.frames[:, 1:], t, batch.text, batch.layout)
    with pytest.raises(ValueError, match="text ids"):
        model(batch.frames, t, batch.text + 1000, batch.layout)
    with pytest.raises(ValueError, match=r"model\.attention"):
        ModelConfig(attention="sparse")
    with pytest.raises(ValueError, match="divisible"):
        ModelConfig(width=30, heads=4)
    with pytest.raises(ValueError, match=r"model\.decoder_kind must be one of"):
        ModelConfig(decoder_kind="resnet")
    with pytest.raises(ValueError, match=r"model\.decoder_width must be an int >= 0"):
        ModelConfig(decoder_width=-1)
    with pytest.raises(ValueError, match=r"model\.refiner_width must be an int >= 0 \(0: no refiner\)"):
        ModelConfig(refiner_width=-2)
    with pytest.raises(ValueError, match=r"model\.input_gate must be an int >= 0 \(0: no input gate\)"):
        ModelConfig(input_gate=-1)
    with pytest.raises(
        ValueError, match=r"model\.refiner_width needs model\.decoder_kind 'mlp' or no decoder"
    ):
        ModelConfig(decoder_width=8, decoder_kind="unet", refiner_width=8)
    with pytest.raises(ValueError, match=r"model\.stem_width must be an int >= 0 \(0: no stem\)"):
        ModelConfig(stem_width=2.5)


def test_self_condition_reads_the_previous_estimate_through_the_embedding_and_the_decoder():
    """No estimate is exactly a zero estimate; each of the two zero-started maps carries the estimate to the
    output on its own; gradients reach both; a model without self-conditioning refuses an estimate."""
    batch = tiny_batch()
    model = tiny_model(attention="local", decoder_width=8, self_condition=True)
    t = torch.rand(len(batch), batch.num_shots)
    previous = torch.rand_like(batch.frames) * 2 - 1

    def run(estimate):
        return model(batch.frames, t, batch.text, batch.layout, previous=estimate)

    none = run(None)
    torch.testing.assert_close(none, run(torch.zeros_like(previous)), rtol=0, atol=0)
    for zeroed in (model.previous_in, model.decoder.previous):
        weight = zeroed.weight.detach().clone()
        with torch.no_grad():
            zeroed.weight.zero_()
        assert (run(previous) - none).abs().max() > 1e-4, zeroed  # the other map alone carries it
        with torch.no_grad():
            zeroed.weight.copy_(weight)
    model.train()
    run(previous).square().mean().backward()
    assert all(model.get_parameter(n).grad.abs().sum() > 0 for n in model.self_condition_parameters)
    with pytest.raises(ValueError, match="previous must have the shape of frames"):
        run(previous[:, 1:])
    with pytest.raises(ValueError, match=r"previous is for models with model\.self_condition"):
        tiny_model()(batch.frames, t, batch.text, batch.layout, previous=previous)
    with pytest.raises(ValueError, match=r"model\.self_condition must be true or false"):
        ModelConfig(self_condition=1)


def test_the_shape_head_reads_the_features_the_frames_are_drawn_from():
    batch = tiny_batch()
    model = tiny_model(decoder_width=8, shape_classes=6)
    t = torch.rand(len(batch), batch.num_shots)
    with torch.no_grad():
        plain = model(batch.frames, t, batch.text, batch.layout)
        frames, features = model(batch.frames, t, batch.text, batch.layout, return_features=True)
    tokens = batch.frames.shape[1] * (batch.frames.shape[-2] // 8) * (batch.frames.shape[-1] // 8)
    assert features.shape == (len(batch), tokens, model.config.width)
    assert torch.equal(frames, plain) and model.shape_head(features).shape == (len(batch), tokens, 6)
    # The head is the model's only extra weight, and nothing the frames depend on.
    assert model.shape_head_parameters == ("shape_head.weight", "shape_head.bias")
    assert (
        tiny_model(decoder_width=8).shape_head is None
        and tiny_model(decoder_width=8).shape_head_parameters == ()
    )
    with pytest.raises(ValueError, match=r"model\.shape_classes must be an int >= 0"):
        ModelConfig(shape_classes=-1)


def test_told_looks_start_silent_then_shape_the_prediction_and_are_checked():
    batch = tiny_batch(batch_size=2, shots=3)
    t = torch.rand(2, batch.num_shots)
    ids = batch.ids
    assert ids.looks is not None and ids.looks.any()
    untold = ids.told(False)
    assert untold.looks is None and ids.told(True) is ids
    half = ids.told(torch.tensor([True, False]))
    assert torch.equal(half.looks[0], ids.looks[0]) and not half.looks[1].any()
    with pytest.raises(ValueError, match=r"ScriptIds.looks must have the shape of lanes"):
        ScriptIds(ids.places, ids.lanes, ids.looks[:, :1])
    with pytest.raises(ValueError, match=r"model\.look_codes needs model\.script_ids"):
        tiny_config(look_codes=6)

    model = tiny_model(script_ids=True, look_codes=6)
    with torch.no_grad():
        model.look_in.weight.zero_()  # as a grown model starts: telling changes nothing
    run = lambda model, ids: model(batch.frames, t, batch.text, batch.layout, ids=ids)
    torch.testing.assert_close(run(model, ids), run(model, untold), rtol=0, atol=0)
    with torch.no_grad():
        model.look_in.weight[1:].normal_(0.0, 0.1)
    told = run(model, ids)
    assert (told - run(model, untold)).abs().max() > 1e-4
    assert (told - run(model, half)).abs()[1].max() > 1e-4  # scene 1 untold in `half`
    other = ScriptIds(ids.places, ids.lanes, torch.where(ids.looks > 0, ids.looks % 6 + 1, 0))
    assert (run(model, other) - told).abs().max() > 1e-4
    with pytest.raises(ValueError, match=r"ids.looks must lie in \[0, 7\)"):
        run(model, ScriptIds(ids.places, ids.lanes, ids.looks + 7))
    # A model without look_codes ignores looks.
    plain = tiny_model(script_ids=True)
    torch.testing.assert_close(run(plain, ids), run(plain, untold), rtol=0, atol=0)


def test_told_paint_starts_silent_then_colours_the_prediction_and_is_checked():
    batch = tiny_batch(batch_size=2, shots=3)
    t = torch.rand(2, batch.num_shots)
    ids = batch.ids
    assert ids.paint is not None and ids.paint.shape[-1] == 11
    with pytest.raises(ValueError, match=r"ScriptIds.paint must come with looks .* without looks"):
        ScriptIds(ids.places, ids.lanes, None, ids.paint)
    with pytest.raises(ValueError, match=r"paint must come with looks and have shape \(B, S, R, P\)"):
        ScriptIds(ids.places, ids.lanes, ids.looks, ids.paint[:, :1])
    with pytest.raises(ValueError, match=r"model\.paint_features needs model\.look_codes"):
        tiny_config(script_ids=True, paint_features=11)

    model = tiny_model(script_ids=True, look_codes=6, paint_features=11)
    run = lambda model, ids: model(batch.frames, t, batch.text, batch.layout, ids=ids)
    shape_only = ScriptIds(ids.places, ids.lanes, ids.looks)
    with torch.no_grad():
        model.paint_in.weight.zero_()  # as a grown model starts: telling the paint changes nothing
        model.look_in.weight[0].zero_()  # the padding row, zero in any trained model
    torch.testing.assert_close(run(model, ids), run(model, shape_only), rtol=0, atol=0)
    with torch.no_grad():
        model.paint_in.weight.normal_(0.0, 0.1)
    told = run(model, ids)
    assert (told - run(model, shape_only)).abs().max() > 1e-4
    other = ScriptIds(ids.places, ids.lanes, ids.looks, ids.paint.roll(1, dims=0))  # the other scene's paint
    assert (run(model, other) - told).abs().max() > 1e-4
    half = ids.told(torch.tensor([True, False]))
    torch.testing.assert_close(run(model, half)[1], run(model, ids.told(False))[1], rtol=0, atol=0)
    with pytest.raises(ValueError, match=r"ids.paint must have 11 features \(model.paint_features\), got 5"):
        run(model, ScriptIds(ids.places, ids.lanes, ids.looks, ids.paint[..., :5]))
    # A model told shapes only ignores paint.
    shapes = tiny_model(script_ids=True, look_codes=6)
    torch.testing.assert_close(run(shapes, ids), run(shapes, shape_only), rtol=0, atol=0)


def test_told_scenery_starts_silent_then_paints_the_prediction_and_is_checked():
    batch = tiny_batch(batch_size=2, shots=3)
    t = torch.rand(2, batch.num_shots)
    ids = batch.ids
    assert ids.scenery is not None and ids.scenery.shape[-1] == 17
    assert ids.scenery[:, 0].abs().sum(-1).min() > 0  # every row of a place's first shot is told
    with pytest.raises(ValueError, match=r"model\.scenery_features needs model\.script_ids"):
        tiny_config(scenery_features=17)

    model = tiny_model(script_ids=True, scenery_features=17)
    run = lambda model, ids: model(batch.frames, t, batch.text, batch.layout, ids=ids)
    untold = ids.told(False)
    with torch.no_grad():
        model.scenery_in.weight.zero_()  # as a grown model starts: telling the scenery changes nothing
    torch.testing.assert_close(run(model, ids), run(model, untold), rtol=0, atol=0)
    with torch.no_grad():
        model.scenery_in.weight.normal_(0.0, 0.1)
    told = run(model, ids)
    assert (told - run(model, untold)).abs().max() > 1e-4
    other = ScriptIds(ids.places, ids.lanes, scenery=ids.scenery.roll(1, dims=0))  # the other scene's
    assert (run(model, other) - told).abs().max() > 1e-4
    half = ids.told(torch.tensor([False, True]))
    torch.testing.assert_close(run(model, half)[0], run(model, untold)[0], rtol=0, atol=0)
    with pytest.raises(ValueError, match=r"ids.scenery must have 17 features \(model.scenery_feat.*got 4"):
        run(model, ScriptIds(ids.places, ids.lanes, scenery=ids.scenery[..., :4]))
    # A model without the map ignores scenery.
    plain = tiny_model(script_ids=True)
    torch.testing.assert_close(run(plain, ids), run(plain, untold), rtol=0, atol=0)


def test_the_frame_cleaner_starts_as_the_identity_and_checks_its_frames():
    """Zero-started, a grown model's samples are unchanged (only clamped); trained weights change each frame
    on its own; frames the U-Net cannot halve twice are refused with their shape."""
    frames = torch.randn(2, 3, 3, 32, 32) * 0.6
    model = MultiShotDiT(tiny_config(cleaner_width=4))
    assert model.cleaner_parameters and MultiShotDiT(tiny_config()).clean(frames) is frames
    torch.testing.assert_close(model.clean(frames), frames.clamp(-1, 1))
    model = tiny_model(seed=1, cleaner_width=4)
    cleaned = model.clean(frames)
    assert (
        cleaned.shape == frames.shape and cleaned.abs().max() <= 1 and (cleaned - frames).abs().max() > 1e-3
    )
    torch.testing.assert_close(model.clean(frames[:1, 1:2]), cleaned[:1, 1:2])  # frame by frame
    with pytest.raises(ValueError, match=r"divisible by 4, got \(6, 3, 30, 32\)"):
        model.clean(torch.zeros(2, 3, 3, 30, 32))


def test_a_cleaner_with_codes_reads_the_trunks_features_of_each_frames_patches():
    """``cleaner_codes``: zero-started it is still the identity; trained weights make the output depend on
    the features of the frame's own tokens (frame by frame); missing or misshapen features are refused."""
    frames = torch.randn(2, 3, 3, 32, 32) * 0.6
    features = torch.randn(2, 3 * 16, 24)  # tiny_config: width 24, 8-pixel patches, 16 tokens a frame
    model = MultiShotDiT(tiny_config(cleaner_width=4, cleaner_codes=2))
    torch.testing.assert_close(model.clean(frames, features), frames.clamp(-1, 1))
    model = tiny_model(seed=1, cleaner_width=4, cleaner_codes=2)
    cleaned = model.clean(frames, features)
    other = features.clone()
    other[:, 16:32] += 1.0  # the second frame's tokens only
    moved = (model.clean(frames, other) - cleaned).abs().amax(dim=(2, 3, 4))
    assert moved[:, 1].min() > 1e-3 and moved[:, 0].max() == 0 and moved[:, 2].max() == 0
    torch.testing.assert_close(model.clean(frames[:1, 1:2], features[:1, 16:32]), cleaned[:1, 1:2])
    with pytest.raises(ValueError, match=r"cleaner_codes: the cleaner reads the trunk's features.*got None"):
        model.clean(frames)
    with pytest.raises(ValueError, match=r"need features \(6, 16, 24\), got \(6, 16, 23\)"):
        model.clean(frames, features[..., :23])
    with pytest.raises(ValueError, match="reads no features"):
        tiny_model(seed=1, cleaner_width=4).cleaner(frames[0], features[0, :16].expand(3, -1, -1))
    with pytest.raises(ValueError, match=r"cleaner_codes needs model\.cleaner_width"):
        tiny_config(cleaner_codes=2)
