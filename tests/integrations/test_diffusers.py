"""MoC processors on tiny diffusers transformers (Wan, CogVideoX, HunyuanVideo, LTX-Video), fully offline.

What is proved:
* with ``top_k >= C`` and causal off, a MoC model's output equals the stock model's;
* with sparsity, every MoC layer's output equals the MoC *reference* applied to the q/k/v the *stock*
  processor computes from the same layer input (captured by replaying the stock processor with a spy in
  place of its attention call), so projections, norms, RoPE, the token grid and the layout are right;
* ``remove_moc`` gives back bit-identical stock output and the original processor objects;
* training: weights change, gradient checkpointing gives the same gradients, gradients equal those of the
  reference backend, and a finite difference agrees with autograd;
* bad input raises clear errors.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace

import pytest
import torch
import torch.nn.functional as F

from moc import Layout, MoCConfig, moc_attention
from moc.integrations.diffusers import (
    TokenGrid,
    apply_moc,
    get_moc_handle,
    multi_shot_config,
    remove_moc,
    self_attention_layers,
    single_shot_config,
)
from tests.integrations import tiny_diffusers as tiny

# ---- the four models ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One supported model: how to build it and its input, and what the stock attention call looks like.

    ``layout(shots, text_tokens)`` is the layout the test expects for the valid tokens of one call, derived
    here from the known input sizes (not from the integration).
    """

    name: str
    build: Callable[[], torch.nn.Module]
    inputs: Callable[[], dict]
    frames: int
    spy_module: str  # module whose attention function the stock processor calls at run time
    spy_name: str
    bshd: bool  # dispatcher convention (B, S, H, D); else F.scaled_dot_product_attention's (B, H, S, D)
    layout: Callable[[list[int], int], Layout]


CASES = {
    "wan": Case(
        "wan",
        tiny.tiny_wan,
        tiny.wan_inputs,
        tiny.WAN_FRAMES,
        "diffusers.models.transformers.transformer_wan",
        "dispatch_attention_fn",
        True,
        lambda shots, text: Layout.video_only(shots, 16),
    ),
    "cogvideox": Case(
        "cogvideox",
        tiny.tiny_cogvideox,
        tiny.cogvideox_inputs,
        4,
        "torch.nn.functional",
        "scaled_dot_product_attention",
        False,
        lambda shots, text: Layout.joint(text, shots, 16, text_first=True),
    ),
    "hunyuan": Case(
        "hunyuan",
        tiny.tiny_hunyuan,
        lambda: tiny.hunyuan_inputs(valid_text=(4, 6, 4)),
        4,
        "diffusers.models.transformers.transformer_hunyuan_video",
        "dispatch_attention_fn",
        True,
        lambda shots, text: Layout.joint(text, shots, 16, text_first=False),
    ),
    "ltx": Case(
        "ltx",
        tiny.tiny_ltx,
        tiny.ltx_inputs,
        4,
        "diffusers.models.transformers.transformer_ltx",
        "dispatch_attention_fn",
        True,
        lambda shots, text: Layout.video_only(shots, 16),
    ),
}

# Captured before any test patches it (the CogVideoX spy replaces F.scaled_dot_product_attention).
_SDPA = F.scaled_dot_product_attention
DENSE = MoCConfig(top_k=1000, causal=False, local_anchor="chunk")
# (config, shots as a function of the latent frames)
SPARSE_SETTINGS = {
    "single-shot": (single_shot_config(top_k=1), None),
    "multi-shot": (multi_shot_config(top_k=1), lambda f: [1, f - 1]),
    "sub-frame-chunks": (MoCConfig(chunk_size=6, top_k=2, causal=True, local_anchor="chunk"), None),
    "text-free-anchors": (
        MoCConfig(top_k=1, causal=False, local_anchor="shot", text_anchor=False, text_queries="anchors"),
        lambda f: [2, f - 2],
    ),
}


def run(model: torch.nn.Module, inputs: dict) -> torch.Tensor:
    with torch.no_grad():
        return model(**inputs, return_dict=False)[0]


# ---- spy: the stock processor with MoC reference attention in place of its attention call --------------


def _reference_bhsd(q, k, v, config: MoCConfig, case: Case, shots: list[int], mask) -> torch.Tensor:
    """MoC reference on (B, H, S, D) q/k/v; with a (B, 1, 1, S) key mask, per batch element over its valid
    prefix, padded query rows as the stock masked SDPA computes them."""
    video = 16 * case.frames
    if mask is None:
        return moc_attention(q, k, v, case.layout(shots, q.shape[2] - video), config, backend="reference")
    rows = []
    for b in range(q.shape[0]):
        n = int(mask[b].sum())
        out = moc_attention(
            q[b : b + 1, :, :n],
            k[b : b + 1, :, :n],
            v[b : b + 1, :, :n],
            case.layout(shots, n - video),
            config,
            backend="reference",
        )
        padded = _SDPA(q[b : b + 1], k[b : b + 1], v[b : b + 1], attn_mask=mask[b : b + 1])
        rows.append(torch.cat([out, padded[:, :, n:]], dim=2))
    return torch.cat(rows, dim=0)


def stock_with_reference(monkeypatch, case: Case, config: MoCConfig, shots: list[int], calls: list):
    """Patch the stock processor's attention call with the MoC reference (records each call)."""
    import importlib

    def spy(query, key, value, attn_mask=None, **kwargs):
        calls.append(tuple(query.shape))
        if case.bshd:
            q, k, v = (t.transpose(1, 2) for t in (query, key, value))
            return _reference_bhsd(q, k, v, config, case, shots, attn_mask).transpose(1, 2)
        return _reference_bhsd(query, key, value, config, case, shots, attn_mask)

    module = importlib.import_module(case.spy_module)
    if case.bshd and not hasattr(module, case.spy_name):
        # diffusers < 0.36 HunyuanVideo called F.scaled_dot_product_attention with (B, H, S, D) directly
        module, case = F, replace(case, spy_name="scaled_dot_product_attention", bshd=False)
    monkeypatch.setattr(module, case.spy_name, spy)


def capture_layer_calls(model: torch.nn.Module, names: list[str]) -> tuple[dict, list]:
    """Forward hooks recording each named attention module's (args, kwargs, output)."""
    modules = dict(model.named_modules())
    records: dict[str, tuple] = {}
    handles = []
    for name in names:

        def hook(module, args, kwargs, output, name=name):
            records[name] = (args, kwargs, output)

        handles.append(modules[name].register_forward_hook(hook, with_kwargs=True))
    return records, handles


# ---- exactness --------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
@pytest.mark.parametrize("multi_shot", [False, True], ids=["one-shot", "two-shots"])
def test_dense_equivalent_config_equals_stock_output(case: Case, multi_shot: bool) -> None:
    model, inputs = case.build(), case.inputs()
    stock = run(model, inputs)
    if multi_shot:
        apply_moc(model, DENSE.replace(local_anchor="shot"), shots=[1, case.frames - 1])
    else:
        apply_moc(model, DENSE)
    moc = run(model, inputs)
    torch.testing.assert_close(moc, stock, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("setting", SPARSE_SETTINGS.keys())
@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_sparse_layers_equal_reference_on_stock_qkv(monkeypatch, case: Case, setting: str) -> None:
    config, shots_of = SPARSE_SETTINGS[setting]
    shots = shots_of(case.frames) if shots_of else None
    model, inputs = case.build(), case.inputs()
    handle = apply_moc(model, config, shots=shots)
    names = list(handle.layers)
    records, hooks = capture_layer_calls(model, names)
    moc_out = run(model, inputs)
    for h in hooks:
        h.remove()
    assert torch.isfinite(moc_out).all()

    stock_processors = handle.original_processors
    calls: list = []
    modules = dict(model.named_modules())
    with monkeypatch.context() as patch:
        stock_with_reference(patch, case, config, shots or [case.frames], calls)
        for name in names:
            args, kwargs, output = records[name]
            with torch.no_grad():
                expected = stock_processors[name](modules[name], *args, **kwargs)
            if isinstance(output, tuple):
                for got, want in zip(output, expected, strict=True):
                    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
            else:
                torch.testing.assert_close(output, expected, rtol=1e-5, atol=1e-5)
    assert len(calls) == len(names)  # the spy really replaced every layer's attention


def test_sparse_moc_differs_from_dense() -> None:
    # Guards the two tests above against a vacuous pass: the sparse setting changes the output.
    model, inputs = tiny.tiny_wan(), tiny.wan_inputs()
    stock = run(model, inputs)
    apply_moc(model, single_shot_config(top_k=1))
    assert (run(model, inputs) - stock).abs().max() > 1e-3


def test_layers_keeps_other_layers_stock(monkeypatch) -> None:
    case = CASES["wan"]
    model, inputs = tiny.tiny_wan(layers=3), tiny.wan_inputs()
    originals = dict(model.attn_processors)
    handle = apply_moc(model, single_shot_config(top_k=1), layers=[1])
    assert handle.layers == ("blocks.1.attn1",)
    assert handle.dense_layers == ("blocks.0.attn1", "blocks.2.attn1")
    now = model.attn_processors
    for name, processor in now.items():
        if name == "blocks.1.attn1.processor":
            assert processor is not originals[name]
        else:
            assert processor is originals[name]  # dense self-attention and all cross-attention untouched
    records, hooks = capture_layer_calls(model, ["blocks.0.attn1", "blocks.1.attn1"])
    run(model, inputs)
    for h in hooks:
        h.remove()
    calls: list = []
    modules = dict(model.named_modules())
    with monkeypatch.context() as patch:
        stock_with_reference(patch, case, single_shot_config(top_k=1), [case.frames], calls)
        args, kwargs, output = records["blocks.1.attn1"]
        with torch.no_grad():
            want = handle.original_processors["blocks.1.attn1"](modules["blocks.1.attn1"], *args, **kwargs)
        torch.testing.assert_close(output, want, rtol=1e-5, atol=1e-5)
    # The dense layer ran the stock processor: replaying it unpatched reproduces its output exactly.
    args, kwargs, output = records["blocks.0.attn1"]
    with torch.no_grad():
        assert torch.equal(
            output, originals["blocks.0.attn1.processor"](modules["blocks.0.attn1"], *args, **kwargs)
        )


def test_grid_from_input_and_stats() -> None:
    # CFG-style batch of 2: the grid comes from the real input; stats follow semantics §6.
    model = tiny.tiny_wan()
    handle = apply_moc(model, single_shot_config(top_k=1), collect_stats=True)
    run(model, tiny.wan_inputs(batch=2))
    assert handle.grid == TokenGrid(frames=5, height=4, width=4)
    assert set(handle.stats) == {"blocks.0.attn1", "blocks.1.attn1"}
    # own frame + 1 routed frame of 5: density 2/5
    assert handle.mean_sparsity() == pytest.approx(0.6)


# ---- remove_moc ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_remove_moc_restores_bit_identical_stock(case: Case) -> None:
    model, inputs = case.build(), case.inputs()
    processors = dict(model.attn_processors)
    hooks_before = len(model._forward_pre_hooks)
    stock = run(model, inputs)
    apply_moc(model, single_shot_config(top_k=1))
    apply_moc(model, single_shot_config(top_k=2))  # applying again replaces the first setup
    assert not torch.equal(run(model, inputs), stock)
    remove_moc(model)
    assert get_moc_handle(model) is None
    assert len(model._forward_pre_hooks) == hooks_before
    after = model.attn_processors
    assert after.keys() == processors.keys()
    assert all(after[name] is processors[name] for name in processors)
    assert torch.equal(run(model, inputs), stock)


# ---- training -----------------------------------------------------------------------------------------


def _loss(model: torch.nn.Module, inputs: dict, target: torch.Tensor) -> torch.Tensor:
    return (model(**inputs, return_dict=False)[0] * target).mean()


def _grads(model: torch.nn.Module, inputs: dict, target: torch.Tensor, seed: int = 0) -> dict:
    model.zero_grad()
    torch.manual_seed(seed)
    _loss(model, inputs, target).backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_training_step_updates_weights_with_gradient_checkpointing() -> None:
    model, inputs = tiny.tiny_wan().train(), tiny.wan_inputs(batch=2)
    target = torch.randn_like(inputs["hidden_states"])
    apply_moc(model, single_shot_config(top_k=1))
    model.enable_gradient_checkpointing()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loss = _loss(model, inputs, target)
    loss.backward()
    for name in ("to_q", "to_k", "to_v"):
        grad = getattr(model.blocks[0].attn1, name).weight.grad
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0
    optimizer.step()
    for layer in ("blocks.0.attn1", "blocks.1.attn1"):
        for proj in ("to_q", "to_k", "to_v"):
            name = f"{layer}.{proj}.weight"
            assert not torch.equal(dict(model.named_parameters())[name], before[name]), name


def test_gradients_match_reference_backend_and_checkpointing() -> None:
    # The processor's varlen backward (with and without gradient checkpointing) gives the gradients of the
    # dense masked reference on every parameter; also under drop-off / drop-in, since checkpointing replays
    # the RNG state.
    inputs = tiny.wan_inputs(batch=2)
    target = torch.randn_like(inputs["hidden_states"])
    grads = {}
    for label, backend, checkpointing in [
        ("reference", "reference", False),
        ("varlen", "varlen", False),
        ("varlen+ckpt", "varlen", True),
    ]:
        model = tiny.tiny_wan().train()
        apply_moc(model, single_shot_config(top_k=1), backend=backend)
        if checkpointing:
            model.enable_gradient_checkpointing()
        grads[label] = _grads(model, inputs, target)
    assert grads["reference"].keys() == grads["varlen"].keys()
    for name, want in grads["reference"].items():
        torch.testing.assert_close(grads["varlen"][name], want, rtol=1e-4, atol=1e-7, msg=name)
        torch.testing.assert_close(grads["varlen+ckpt"][name], grads["varlen"][name], rtol=1e-5, atol=1e-8)

    perturbed = MoCConfig(top_k=1, causal=False, local_anchor="chunk", drop_off=0.5, drop_in=1.0)
    runs = []
    for checkpointing in (False, True):
        model = tiny.tiny_wan().train()
        apply_moc(model, perturbed)
        if checkpointing:
            model.enable_gradient_checkpointing()
        runs.append(_grads(model, inputs, target, seed=7))
    for name, want in runs[0].items():
        torch.testing.assert_close(runs[1][name], want, rtol=1e-5, atol=1e-8, msg=name)


def test_finite_difference_agrees_with_autograd() -> None:
    # The value projection of the last MoC layer: it moves no routing decision (routing reads q and k only,
    # and no later layer routes), so the loss is smooth in it and a central difference is valid even with
    # the model's float32 internals.
    model, inputs = tiny.tiny_wan().train(), tiny.wan_inputs()
    target = torch.randn_like(inputs["hidden_states"])
    apply_moc(model, single_shot_config(top_k=1))
    weight = model.blocks[-1].attn1.to_v.weight
    index = (0, 0)
    _loss(model, inputs, target).backward()
    analytic = weight.grad[index].item()
    eps = 1e-2
    with torch.no_grad():
        weight[index] += eps
        plus = _loss(model, inputs, target).item()
        weight[index] -= 2 * eps
        minus = _loss(model, inputs, target).item()
        weight[index] += eps
    numeric = (plus - minus) / (2 * eps)
    assert analytic != 0
    assert numeric == pytest.approx(analytic, rel=1e-2)


# ---- HunyuanVideo text padding -------------------------------------------------------------------------


def test_hunyuan_padded_text_gets_no_weight() -> None:
    # Changing the padded text embeddings changes no valid output (video or valid text) under MoC.
    model = tiny.tiny_hunyuan()
    inputs = tiny.hunyuan_inputs(valid_text=(3, 5))
    apply_moc(model, single_shot_config(top_k=1))
    base = run(model, inputs)
    noisy = dict(inputs)
    text = inputs["encoder_hidden_states"].clone()
    text[0, 3:] += 10 * torch.randn_like(text[0, 3:])
    text[1, 5:] += 10 * torch.randn_like(text[1, 5:])
    noisy["encoder_hidden_states"] = text
    torch.testing.assert_close(run(model, noisy), base, rtol=1e-5, atol=1e-5)


def test_hunyuan_rejects_a_mask_that_is_not_a_valid_prefix() -> None:
    model, inputs = tiny.tiny_hunyuan(), tiny.hunyuan_inputs(valid_text=(4,))
    apply_moc(model, single_shot_config(top_k=1))
    run(model, inputs)  # sets the grid
    attn = model.transformer_blocks[0].attn
    video = torch.randn(1, 64, 32)
    text = torch.randn(1, 6, 32)
    mask = torch.ones(1, 1, 1, 70, dtype=torch.bool)
    mask[..., 10] = False  # hides a video token
    with torch.no_grad(), pytest.raises(ValueError, match="prefix"):
        attn(hidden_states=video, encoder_hidden_states=text, attention_mask=mask)
    with torch.no_grad(), pytest.raises(ValueError, match="boolean"):
        attn(hidden_states=video, encoder_hidden_states=text, attention_mask=mask.float())


# ---- errors -------------------------------------------------------------------------------------------


def test_unsupported_model_raises() -> None:
    with pytest.raises(TypeError, match="supported transformers: WanTransformer3DModel"):
        apply_moc(torch.nn.Linear(2, 2))

    class FakePipeline:
        transformer = torch.nn.Linear(2, 2)

    with pytest.raises(TypeError, match=r"pass pipe\.transformer"):
        apply_moc(FakePipeline())


def test_shots_that_do_not_sum_to_latent_frames_raise() -> None:
    model = tiny.tiny_wan()
    apply_moc(model, shots=[2, 2])
    with pytest.raises(
        ValueError, match=r"gives 4 latent frames, but this WanTransformer3DModel input has 5"
    ):
        run(model, tiny.wan_inputs())
    with pytest.raises(ValueError, match="positive ints"):
        apply_moc(model, shots=[2, 0, 3])
    with pytest.raises(TypeError, match="list of latent-frame counts"):
        apply_moc(model, shots=5)


def test_config_that_does_not_fit_raises() -> None:
    model = tiny.tiny_wan()
    with pytest.raises(ValueError, match="dense attention"):
        apply_moc(model, MoCConfig(local_anchor="shot"))  # one shot: the anchor would be the whole video
    with pytest.raises(TypeError, match="MoCConfig"):
        apply_moc(model, {"top_k": 3})
    with pytest.raises(ValueError, match=r"indices in \[0, 2\)"):
        apply_moc(model, layers=[0, 2])
    with pytest.raises(ValueError, match="backend"):
        apply_moc(model, backend="flash")
    assert get_moc_handle(model) is None  # failed calls leave the model untouched


def test_non_stock_processor_and_missing_handle_raise() -> None:
    from diffusers.models.attention_processor import AttnProcessor2_0

    model = tiny.tiny_cogvideox()
    model.transformer_blocks[1].attn1.set_processor(AttnProcessor2_0())
    with pytest.raises(ValueError, match=r"transformer_blocks\.1\.attn1 uses processor AttnProcessor2_0"):
        apply_moc(model)
    with pytest.raises(ValueError, match="not applied"):
        remove_moc(model)


def test_ltx_without_grid_sizes_raises() -> None:
    model = tiny.tiny_ltx()
    apply_moc(model)
    inputs = tiny.ltx_inputs()
    del inputs["num_frames"]
    with pytest.raises(ValueError, match="num_frames"):
        run(model, inputs)


def test_self_attention_layers_lists_execution_order() -> None:
    assert self_attention_layers(tiny.tiny_hunyuan()) == [
        "transformer_blocks.0.attn",
        "single_transformer_blocks.0.attn",
    ]
    assert self_attention_layers(tiny.tiny_wan()) == ["blocks.0.attn1", "blocks.1.attn1"]


def test_moc_imports_without_diffusers() -> None:
    code = (
        "import sys, moc, moc.integrations, moc.integrations.diffusers, moc.cli.diffusers_generate; "
        "assert 'diffusers' not in sys.modules, 'diffusers imported eagerly'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
