"""``MoCConfig``: what MoC attention computes, validated once at construction."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

LOCAL_ANCHORS = ("shot", "chunk")
TEXT_QUERY_MODES = ("dense", "anchors")


@dataclass(frozen=True)
class MoCConfig:
    """Configuration of Mixture-of-Contexts attention (``moc-semantics.md`` §2-§5).

    Args:
        chunk_size: target chunk size in tokens; ``None`` means one frame per chunk.
        top_k: routed chunks per video query and head, on top of the mandatory anchors (0 = anchors only).
        causal: route only to chunks earlier in the sequence than the query's own chunk.
        local_anchor: ``"shot"`` (attend to the whole own shot) or ``"chunk"`` (own chunk only).
        text_anchor: every video query attends to all text tokens.
        text_queries: ``"dense"`` (text queries attend to everything) or ``"anchors"`` (text + own shot).
        drop_off: maximum fraction ``p_max`` of routed chunks removed per query in training.
        drop_in: Poisson rate ``lambda`` of extra random candidate chunks per query in training.
    """

    chunk_size: int | None = None
    top_k: int = 3
    causal: bool = True
    local_anchor: str = "shot"
    text_anchor: bool = True
    text_queries: str = "dense"
    drop_off: float = 0.0
    drop_in: float = 0.0

    def __post_init__(self) -> None:
        if self.chunk_size is not None:
            _require_int("chunk_size", self.chunk_size)
            if self.chunk_size <= 0:
                raise ValueError(f"MoCConfig.chunk_size must be > 0 or None, got {self.chunk_size}")
        _require_int("top_k", self.top_k)
        if self.top_k < 0:
            raise ValueError(f"MoCConfig.top_k must be >= 0, got {self.top_k}")
        for name in ("causal", "text_anchor"):
            if not isinstance(getattr(self, name), bool):
                value = getattr(self, name)
                raise TypeError(f"MoCConfig.{name} must be a bool, got {type(value).__name__} {value!r}")
        _require_choice("local_anchor", self.local_anchor, LOCAL_ANCHORS)
        _require_choice("text_queries", self.text_queries, TEXT_QUERY_MODES)
        for name in ("drop_off", "drop_in"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"MoCConfig.{name} must be a float, got {type(value).__name__} {value!r}")
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"MoCConfig.{name} must be finite and >= 0, got {value}")
        if self.drop_off > 1:
            raise ValueError(f"MoCConfig.drop_off is a fraction and must be <= 1, got {self.drop_off}")

    @property
    def perturbs(self) -> bool:
        """Whether training-time drop-off or drop-in is configured."""
        return self.drop_off > 0 or self.drop_in > 0

    def replace(self, **changes: object) -> MoCConfig:
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)


def _require_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"MoCConfig.{name} must be an int, got {type(value).__name__} {value!r}")


def _require_choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"MoCConfig.{name} must be one of {choices}, got {value!r}")
