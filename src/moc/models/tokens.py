"""Per-token metadata of a packed multi-shot sequence: kind, shot, 3D position, caption slot.

Computed once per ``(Layout, shot_stride)`` and cached; the model slices it when it runs only a suffix of
the sequence (shot-by-shot generation with cached history keys).

:class:`ScriptIds` carries what a scene script says is where in each shot (its place, and which character
stands in which rows): the ids a caption names, laid out on the patch grid; and, when told, how each
character looks in the shot that introduces it and how each place looks in the shot where it first appears.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch

from moc.layout import Layout, TextSegment, VideoSegment


@dataclass(frozen=True, eq=False)
class TokenTable:
    """Metadata of every token of a layout.

    Attributes:
        is_video: ``(L,)`` bool.
        shot: ``(L,)`` int64 shot id, -1 for the global caption.
        position: ``(L, 3)`` int64 RoPE positions ``(time, row, column)``. A video token of local frame
            ``f`` in shot ``s`` sits at time ``s * shot_stride + f``; caption tokens share the time of their
            shot's first frame (the global caption sits one stride before shot 0) and row = column = 0.
        text_slot: ``(L,)`` int64 index of a caption token within its caption (0 for video tokens).
        grid: ``(rows, columns)`` of patches per frame (from the video segments).
    """

    is_video: torch.Tensor
    shot: torch.Tensor
    position: torch.Tensor
    text_slot: torch.Tensor
    grid: tuple[int, int]

    @property
    def num_tokens(self) -> int:
        return int(self.shot.numel())


@dataclass(frozen=True)
class ScriptIds:
    """The ids a scene script places in each shot, on the patch grid, and the looks it tells.

    A caption already names the shot's place and its characters in lane order; these are the same ids laid
    out where they are, so that a video token knows *which* character or place it shows without inferring
    it through the caption. An id says who, never what they look like. Only what is told, where present,
    says what: ``looks`` and ``paint``, how a character looks, in the rows of the one shot that introduces
    it (as a story's text describes a character once, when it enters), and ``scenery``, how a place looks,
    in the shot where it first appears. Every later shot must keep those looks from memory.

    Attributes:
        places: ``(B, S)`` int64 place index of every shot (0 for place ``A`` ... 9 for ``J``).
        lanes: ``(B, S, R)`` int64, per shot and patch row: ``1 +`` the id of the character whose sprite
            rows cover the most of that patch row, ``0`` where no character stands (a character keeps its
            lane for the whole shot, so rows are constant within a shot).
        looks: ``None`` (nothing told), or ``(B, S, R)`` int64: ``1 +`` the look code of the character in
            that row where the shot introduces it and its look is told, ``0`` elsewhere (read by models with
            ``model.look_codes``; the world's code is the index of the character's shape).
        paint: ``None``, or ``(B, S, R, P)`` float, told with ``looks``: how the character told in that row
            is painted, zero in the rows where ``looks`` is 0 (read by models with ``model.paint_features =
            P``; the world's ``P = 11`` features are the body and accent colours, RGB in [-1, 1], and the
            accent pattern one-hot: :func:`moc.world.data.intro_paint`).
        scenery: ``None``, or ``(B, S, R, Q)`` float: how the place is painted in each patch row of the
            shot where it first appears, zero in every other shot (read by models with
            ``model.scenery_features = Q``; the world's ``Q = 17`` features are the row's mean colour and the
            place's colours, horizon and faint feature: :func:`moc.world.data.intro_scenery`).
    """

    places: torch.Tensor
    lanes: torch.Tensor
    looks: torch.Tensor | None = None
    paint: torch.Tensor | None = None
    scenery: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.places.dim() != 2 or self.lanes.dim() != 3 or self.lanes.shape[:2] != self.places.shape:
            raise ValueError(
                f"ScriptIds needs places (B, S) and lanes (B, S, R), got {tuple(self.places.shape)} and "
                f"{tuple(self.lanes.shape)}"
            )
        if self.looks is not None and self.looks.shape != self.lanes.shape:
            raise ValueError(
                f"ScriptIds.looks must have the shape of lanes {tuple(self.lanes.shape)}, got "
                f"{tuple(self.looks.shape)}"
            )
        if self.paint is not None and (
            self.looks is None or self.paint.dim() != 4 or self.paint.shape[:3] != self.lanes.shape
        ):
            raise ValueError(
                f"ScriptIds.paint must come with looks and have shape (B, S, R, P) with (B, S, R) = "
                f"{tuple(self.lanes.shape)}, got {tuple(self.paint.shape)}"
                + (" without looks" if self.looks is None else "")
            )
        if self.scenery is not None and (
            self.scenery.dim() != 4 or self.scenery.shape[:3] != self.lanes.shape
        ):
            raise ValueError(
                f"ScriptIds.scenery must have shape (B, S, R, Q) with (B, S, R) = {tuple(self.lanes.shape)}, "
                f"got {tuple(self.scenery.shape)}"
            )

    def _map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> ScriptIds:
        def maybe(x: torch.Tensor | None) -> torch.Tensor | None:
            return None if x is None else fn(x)

        return ScriptIds(
            fn(self.places), fn(self.lanes), maybe(self.looks), maybe(self.paint), maybe(self.scenery)
        )

    def prefix(self, shots: int) -> ScriptIds:
        """The ids of the first ``shots`` shots."""
        return self._map(lambda x: x[:, :shots])

    def first(self, scenes: int) -> ScriptIds:
        """The ids of the first ``scenes`` batch elements."""
        return self._map(lambda x: x[:scenes])

    def to(self, device: torch.device | str) -> ScriptIds:
        return self._map(lambda x: x.to(device))

    def told(self, scenes: torch.Tensor | bool) -> ScriptIds:
        """These ids with what they tell (looks, paint and scenery) kept only for the batch elements where
        ``scenes`` (``(B,)`` bool, or one bool for all) is true; ``False`` drops it all (``None``)."""
        if scenes is True:
            return self
        if scenes is False:
            return ScriptIds(self.places, self.lanes)
        keep = scenes.to(self.lanes.device)

        def kept(x: torch.Tensor | None) -> torch.Tensor | None:
            return None if x is None else x * keep.view(-1, *[1] * (x.dim() - 1))

        return ScriptIds(self.places, self.lanes, kept(self.looks), kept(self.paint), kept(self.scenery))

    def places_told(self, told: torch.Tensor) -> ScriptIds:
        """These ids with the scenery kept only for the places where ``told`` (``(B, num_ids)`` bool, indexed
        by place id) is true: an untold place's first shot is told nothing, so the model chooses its look."""
        if self.scenery is None:
            return self
        if told.dim() != 2 or told.shape[0] != self.places.shape[0]:
            raise ValueError(
                f"told must be (B, num_ids) with B = {self.places.shape[0]}, got {tuple(told.shape)}"
            )
        keep = told.to(self.places.device).gather(1, self.places)  # (B, S)
        return replace(self, scenery=self.scenery * keep[..., None, None])


@functools.lru_cache(maxsize=128)
def token_table(layout: Layout, shot_stride: int, grid: tuple[int, int]) -> TokenTable:
    """The :class:`TokenTable` of ``layout`` for frames of ``grid = (rows, columns)`` patches."""
    rows, cols = grid
    is_video, shot, position, slot = [], [], [], []
    for seg in layout.segments:
        s = -1 if seg.shot is None else seg.shot
        n = seg.num_tokens
        if isinstance(seg, TextSegment):
            is_video.append(torch.zeros(n, dtype=torch.bool))
            position.append(torch.tensor([[s * shot_stride, 0, 0]]).expand(n, 3))
            slot.append(torch.arange(n))
        else:
            assert isinstance(seg, VideoSegment)
            if seg.tokens_per_frame != rows * cols:
                raise ValueError(
                    f"layout has {seg.tokens_per_frame} tokens per frame but the model's patch grid is "
                    f"{rows}x{cols} = {rows * cols}"
                )
            f, r, c = torch.meshgrid(
                torch.arange(seg.frames), torch.arange(rows), torch.arange(cols), indexing="ij"
            )
            position.append(torch.stack([s * shot_stride + f, r, c], -1).reshape(-1, 3))
            is_video.append(torch.ones(n, dtype=torch.bool))
            slot.append(torch.zeros(n, dtype=torch.int64))
        shot.append(torch.full((n,), s, dtype=torch.int64))
    return TokenTable(
        is_video=torch.cat(is_video),
        shot=torch.cat(shot),
        position=torch.cat(position).long(),
        text_slot=torch.cat(slot),
        grid=grid,
    )
