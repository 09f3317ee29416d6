"""``apply_moc`` / ``remove_moc``: MoC attention on a diffusers video transformer, and back.

``apply_moc`` swaps the processors of the self-attention modules (cross-attention is untouched) for MoC
processors and registers one forward pre-hook on the transformer that reads the latent token grid from the
real input of every call. ``remove_moc`` puts the original processor objects back and removes the hook.
The transformer's ``forward`` is never patched.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from torch import nn
from torch.utils.hooks import RemovableHandle

from moc.attention.api import BACKENDS, Backend
from moc.config import MoCConfig
from moc.integrations.diffusers.models import ModelSpec, TokenGrid, spec_for
from moc.routing import PlanStats

# The attribute of the transformer that holds its MoCHandle while MoC is applied.
HANDLE_ATTRIBUTE = "_moc_handle"


def single_shot_config(top_k: int = 3, chunk_size: int | None = None) -> MoCConfig:
    """The paper's single-shot setting (its Wan-2.1-1.3B experiment): chunk = one latent frame, local
    anchor = own chunk, not causal, ``top_k = 3`` routed chunks, text anchor on (joint-attention models)."""
    return MoCConfig(chunk_size=chunk_size, top_k=top_k, causal=False, local_anchor="chunk", text_anchor=True)


def multi_shot_config(top_k: int = 5, chunk_size: int | None = None) -> MoCConfig:
    """The paper's multi-shot setting: local anchor = own shot, causal routing, ``top_k = 5``, chunk = one
    latent frame by default (the paper's final 1280-token stage is about one latent frame)."""
    return MoCConfig(chunk_size=chunk_size, top_k=top_k, causal=True, local_anchor="shot", text_anchor=True)


class MoCHandle:
    """What :func:`apply_moc` did to one transformer; shared by its MoC processors.

    The forward pre-hook writes :attr:`grid` at the start of every transformer call; the processors read
    it to build the layout of their attention sequence.

    Attributes:
        model: the transformer class name.
        config: the MoC configuration of the MoC layers.
        shots: latent frames per shot (``None``: one shot, the single-shot setting).
        backend: the :func:`moc.moc_attention` backend of the processors.
        layers: names of the attention modules running MoC (the others keep their stock processor).
        dense_layers: names of the self-attention modules left dense.
        grid: the token grid of the latest transformer call (``None`` before the first call).
        collect_stats: whether processors record :class:`moc.PlanStats` per layer in :attr:`stats`.
        stats: layer name -> routing statistics of that layer's latest call (when ``collect_stats``).
    """

    def __init__(
        self,
        spec: ModelSpec,
        config: MoCConfig,
        shots: tuple[int, ...] | None,
        backend: Backend,
        layers: tuple[str, ...],
        dense_layers: tuple[str, ...],
        collect_stats: bool,
    ) -> None:
        self.spec = spec
        self.model = spec.class_name
        self.config = config
        self.shots = shots
        self.backend = backend
        self.layers = layers
        self.dense_layers = dense_layers
        self.collect_stats = collect_stats
        self.grid: TokenGrid | None = None
        self.stats: dict[str, PlanStats] = {}
        self._originals: dict[str, Any] = {}
        self._hook: RemovableHandle | None = None

    def __repr__(self) -> str:
        return (
            f"MoCHandle(model={self.model}, config={self.config}, shots={self.shots}, "
            f"backend={self.backend!r}, moc_layers={len(self.layers)}, dense_layers={len(self.dense_layers)})"
        )

    @property
    def original_processors(self) -> dict[str, Any]:
        """Layer name -> the stock processor object MoC replaced (restored by :func:`remove_moc`)."""
        return dict(self._originals)

    # ---- called by the pre-hook and the processors -------------------------------------------------------

    def _pre_forward(self, module: nn.Module, args: tuple, kwargs: dict[str, Any]) -> None:
        grid = self.spec.read_grid(module, self.spec.bind(module, args, kwargs))
        self.shot_frames(grid)  # validate the shots against this input before any layer runs
        self.grid = grid

    def require_grid(self, layer_name: str) -> TokenGrid:
        if self.grid is None:
            raise RuntimeError(
                f"{layer_name}: the MoC processor was called before its transformer's forward; MoC reads "
                "the token grid from the transformer input, so call the transformer, not a block alone"
            )
        return self.grid

    def shot_frames(self, grid: TokenGrid) -> list[int]:
        """Latent frames per shot for ``grid``; raises if the shots do not sum to ``grid.frames``."""
        if self.shots is None:
            return [grid.frames]
        if sum(self.shots) != grid.frames:
            raise ValueError(
                f"apply_moc(shots={list(self.shots)}) gives {sum(self.shots)} latent frames, but this "
                f"{self.model} input has {grid.frames} latent frames (grid {grid.frames}x{grid.height}x"
                f"{grid.width}); shots are counted in latent frames after VAE compression and patching"
            )
        return list(self.shots)

    def record(self, layer_name: str, stats: PlanStats | None) -> None:
        if stats is not None:
            self.stats[layer_name] = stats

    # ---- summaries --------------------------------------------------------------------------------------

    def mean_sparsity(self) -> float:
        """Mean sparsity of the MoC layers in :attr:`stats` (requires ``collect_stats=True``)."""
        if not self.stats:
            raise RuntimeError("no statistics recorded: apply_moc(..., collect_stats=True) and run a forward")
        return sum(s.sparsity for s in self.stats.values()) / len(self.stats)


def self_attention_layers(transformer: nn.Module) -> list[str]:
    """Names of the self-attention modules MoC can serve, in execution order (index = ``layers`` index).

    HunyuanVideo numbers its dual-stream blocks first, then its single-stream blocks.
    """
    return [name for name, _ in spec_for(transformer).attention_modules(transformer)]


def get_moc_handle(transformer: nn.Module) -> MoCHandle | None:
    """The :class:`MoCHandle` of ``transformer`` while MoC is applied, else ``None``."""
    handle = getattr(transformer, HANDLE_ATTRIBUTE, None)
    return handle if isinstance(handle, MoCHandle) else None


def apply_moc(
    transformer: nn.Module,
    config: MoCConfig | None = None,
    *,
    shots: Sequence[int] | None = None,
    layers: Iterable[int] | None = None,
    backend: Backend = "varlen",
    collect_stats: bool = False,
) -> MoCHandle:
    """Run the self-attention of a diffusers video transformer as MoC attention.

    Sets a MoC processor on each selected self-attention module and a forward pre-hook that reads the token
    grid (latent frames after patching x token rows x token columns) from the input of every call.
    Cross-attention modules, the text-refiner attention (HunyuanVideo) and unselected layers keep their
    stock processors. Applying again replaces the previous MoC setup.

    Args:
        transformer: a ``WanTransformer3DModel`` (Wan 2.1/2.2; for Wan 2.2 A14B also apply it to
            ``pipe.transformer_2``), ``CogVideoXTransformer3DModel``, ``HunyuanVideoTransformer3DModel`` or
            ``LTXVideoTransformer3DModel``.
        config: the MoC configuration; ``None`` picks the paper's setting: :func:`single_shot_config`
            without ``shots`` (chunk = latent frame, own-chunk anchor, not causal, ``top_k=3``) and
            :func:`multi_shot_config` with them (own-shot anchor, causal, ``top_k=5``).
        shots: latent frames per shot, e.g. ``[7, 7, 7]`` for three shots in 21 latent frames; must sum to
            the latent frames of every input. ``None``: the whole clip is one shot.
        layers: indices into :func:`self_attention_layers` that run MoC; the others stay dense.
            ``None``: all of them.
        backend: the :func:`moc.moc_attention` backend; ``"varlen"`` is exact and trainable (forward and
            backward) on every device, ``"auto"`` picks FlexAttention on CUDA for long sequences.
        collect_stats: record each MoC layer's routing statistics (sparsity, FLOPs) of its latest call in
            ``handle.stats``; costs one extra pass over the plan per layer.

    Returns:
        The :class:`MoCHandle` (also stored on the transformer until :func:`remove_moc`).

    Raises:
        TypeError: unsupported transformer class, or a config that is not a :class:`moc.MoCConfig`.
        ValueError: malformed ``shots`` or ``layers``, a config that does not fit (``local_anchor="shot"``
            with a single shot would make every video token mandatory: dense attention), or a module that
            does not carry the stock processor. At call time, shots that do not sum to the latent frames.
        ImportError: diffusers is not installed.
    """
    _require_diffusers()
    spec = spec_for(transformer)
    shots_t = _check_shots(shots)
    if config is None:
        config = single_shot_config() if shots_t is None else multi_shot_config()
    _check_config(config, shots_t)
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if not isinstance(collect_stats, bool):
        raise TypeError(f"collect_stats must be a bool, got {type(collect_stats).__name__}")

    modules = spec.attention_modules(transformer)
    selected = _check_layers(layers, len(modules))
    if get_moc_handle(transformer) is not None:
        remove_moc(transformer)
    stock_cls = spec.stock_processor_class()
    for name, module in modules:
        processor = module.get_processor()
        if type(processor) is not stock_cls:
            raise ValueError(
                f"{name} uses processor {type(processor).__name__}, not the stock {stock_cls.__name__}; "
                "MoC replaces the stock processor only (unfuse QKV projections and unload custom "
                "processors first)"
            )

    from moc.integrations.diffusers.processors import PROCESSORS

    moc_names = tuple(name for i, (name, _) in enumerate(modules) if i in selected)
    dense_names = tuple(name for i, (name, _) in enumerate(modules) if i not in selected)
    handle = MoCHandle(spec, config, shots_t, backend, moc_names, dense_names, collect_stats)
    processor_cls = PROCESSORS[spec.class_name]
    for index, (name, module) in enumerate(modules):
        if index in selected:
            handle._originals[name] = module.get_processor()
            module.set_processor(processor_cls(handle, name, config, backend))
    handle._hook = transformer.register_forward_pre_hook(handle._pre_forward, with_kwargs=True)
    setattr(transformer, HANDLE_ATTRIBUTE, handle)
    return handle


def remove_moc(transformer: nn.Module) -> None:
    """Undo :func:`apply_moc`: restore the original processor objects and remove the pre-hook.

    Raises:
        ValueError: MoC is not applied to ``transformer``.
    """
    handle = get_moc_handle(transformer)
    if handle is None:
        raise ValueError(f"MoC is not applied to this {type(transformer).__name__}; nothing to remove")
    modules = dict(handle.spec.attention_modules(transformer))
    for name, processor in handle._originals.items():
        modules[name].set_processor(processor)
    if handle._hook is not None:
        handle._hook.remove()
    delattr(transformer, HANDLE_ATTRIBUTE)


def _require_diffusers() -> None:
    try:
        import diffusers  # noqa: F401
    except ImportError as error:
        raise ImportError(
            "moc.integrations.diffusers needs diffusers: pip install 'mixture-of-contexts[diffusers]'"
        ) from error


def _check_shots(shots: Sequence[int] | None) -> tuple[int, ...] | None:
    if shots is None:
        return None
    if isinstance(shots, (int, str)) or not isinstance(shots, Iterable):
        raise TypeError(f"shots must be a list of latent-frame counts, got {type(shots).__name__} {shots!r}")
    values = tuple(shots)
    if not values:
        raise ValueError("shots must list at least one shot, got []")
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"shots must be positive ints (latent frames per shot), got {list(values)}")
    return values


def _check_config(config: MoCConfig, shots: tuple[int, ...] | None) -> None:
    if not isinstance(config, MoCConfig):
        raise TypeError(f"config must be a moc.MoCConfig, got {type(config).__name__}")
    if config.local_anchor == "shot" and (shots is None or len(shots) == 1):
        raise ValueError(
            "config.local_anchor='shot' with a single shot makes every video token a mandatory anchor of "
            "every video query: that is dense attention. Use the single-shot setting "
            "(local_anchor='chunk', e.g. moc.integrations.diffusers.single_shot_config()) or pass shots=[...]"
        )


def _check_layers(layers: Iterable[int] | None, count: int) -> set[int]:
    if layers is None:
        return set(range(count))
    if isinstance(layers, (int, str)) or not isinstance(layers, Iterable):
        raise TypeError(f"layers must be a list of layer indices, got {type(layers).__name__} {layers!r}")
    chosen = set()
    for value in layers:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < count:
            raise ValueError(
                f"layers must be indices in [0, {count}) of self_attention_layers(transformer), got {value!r}"
            )
        chosen.add(value)
    return chosen
