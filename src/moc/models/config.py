"""``ModelConfig``: the architecture of the multi-shot DiT, and the attention modes it can run."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from moc.config import MoCConfig

ATTENTION_MODES = ("moc", "dense", "local", "window")
"""``moc``: routed MoC attention. The baselines share every other line of code:
``dense`` (full attention), ``local`` (anchors only: captions and the own shot, ``top_k=0``) and
``window`` (anchors plus every chunk of the previous shot)."""
DECODER_KINDS = ("mlp", "conv", "unet")
"""``mlp``: :class:`~moc.models.dit.PixelDecoder`, per patch; ``conv``:
:class:`~moc.models.dit.ConvPixelDecoder`, over each frame; ``unet``:
:class:`~moc.models.dit.UNetPixelDecoder`, the same with a half-resolution path."""
# Starting logit bonus of ``id_bias`` for same-id pairs: about a 2.7x weight, small next to the spread of
# the QK-normed logits (several units), so the model can raise, keep or undo it.
ID_BIAS_INIT = 1.0


def rope_pairs(head_dim: int) -> tuple[int, int, int]:
    """Frequency pairs of a head's 3D RoPE per axis ``(time, row, column)``: time gets what is left over."""
    half = head_dim // 2
    spatial = half // 3
    return half - 2 * spatial, spatial, spatial


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of :class:`~moc.models.MultiShotDiT`.

    Args:
        width: hidden size.
        depth: transformer blocks.
        heads: attention heads (``width`` must be divisible by it; head dim must be a multiple of 6 + 2).
        patch_size: pixel patch side; a frame of ``H x W`` gives ``(H/p)(W/p)`` tokens.
        channels: image channels.
        mlp_ratio: MLP hidden size as a multiple of ``width``.
        vocab_size: caption vocabulary size (``moc.world.Vocabulary.default()`` has this many words).
        max_caption_tokens: longest caption (global or per shot) the text position table covers.
        shot_stride: RoPE time positions between the first frames of consecutive shots (LCT's shot offset);
            larger than any shot's frame count so that shots never overlap in time.
        rope_theta: RoPE base.
        attention: one of :data:`ATTENTION_MODES`.
        moc: the MoC configuration used when ``attention == "moc"`` (training schedules override
            ``chunk_size`` and ``top_k`` per step). Its ``chunk_size``, ``causal`` and anchors also shape the
            baselines ``local`` and ``window``.
        backend: MoC attention backend (``"auto"`` picks by size; see ``moc.attention.select_backend``).
        script_ids: add an embedding of the script's ids to the video tokens (the shot's place, and the
            character standing in each patch row; :class:`~moc.models.tokens.ScriptIds`). Without them a
            token learns which character it shows only through several attention hops via the caption,
            and chunk means cannot tell two characters apart.
        num_ids: size of the place and character id tables (the world has 10 of each).
        time_nope_pairs: how many of the lowest time frequencies of each head carry no rotation (partial
            RoPE). With every dimension rotated, a query can match a key's content only at the time distances
            it learned; unrotated dimensions compare content at any shot distance.
        id_bias: with ``script_ids``, every attention logit between two video tokens that carry the same
            character id gets a learned per-head bonus, and so does every logit between video tokens of shots
            at the same place (two gains per head and block, starting at :data:`ID_BIAS_INIT`). Routing sees
            the same bonus through the chunk means. This makes "look up Character 2" a built-in operation
            instead of one the model has to discover (``docs/training.md``, stage 6).
        joint_causal: routing causality when every shot is noisy (joint generation, and the joint batches
            of ``train.joint_batches``); ``None`` uses ``moc.causal`` everywhere. Shot-by-shot generation
            always routes with ``moc.causal``: later shots do not exist yet, so a model must not learn to
            look for them there, while jointly the later shots are there and dense attention uses them.
        decoder_width: hidden size of the pixel decoder, 0 for none. A linear head writes every patch as a
            sum of ``width`` fixed patch images, too few for sharp shapes and seamless backgrounds at every
            sub-patch offset; the decoder (:class:`~moc.models.dit.PixelDecoder`) adds a per-patch MLP that
            reads the token's features and its noisy pixels. It starts at zero, so a model grown from a
            checkpoint without it computes what the checkpoint computed.
        decoder_kind: which pixel decoder (:data:`DECODER_KINDS`): ``mlp`` (per patch, ``decoder_width``
            hidden units), ``conv`` (3x3 convolutions over each frame, ``decoder_width`` channels) or ``unet``
            (the same with a half-resolution path). The convolutional ones read across patch borders;
            docs/training.md measures all three.
        stem_width: channels of the convolutional stem, 0 for none. A linear patch embedding sees one 8x8
            patch of noisy pixels; a sprite spans four patches, and at mid noise levels the evidence for its
            shape (a diagonal edge, a corner) is spread over all of them. The stem
            (:class:`~moc.models.dit.ConvStem`) runs three 3x3 convolutions over each noisy frame (16x16
            pixels per token) and adds a projection of its features to the patch embedding. The projection
            starts at zero, so a model grown from a checkpoint without a stem computes what the checkpoint
            computed.
        self_condition: the model also reads its own previous clean estimate of the frames it runs
            (self-conditioning, Chen et al. 2022, "Analog Bits"): a zero-started linear map adds each patch of
            the estimate to the patch embedding, and the ``mlp`` pixel decoder reads the estimate's pixels
            too. A sampler passes the last step's estimate; training passes a first no-grad estimate in a
            fraction ``train.self_condition`` of its steps and zeros otherwise. Each step can then refine a
            sprite it has begun to draw instead of re-deciding it from a re-noised blur.
        shape_classes: outputs of the auxiliary shape head, 0 for none. A linear map reads every video
            token's final features (what the pixel decoder reads) and names the hidden shape of the
            character the token shows; ``train.shape_loss`` trains it with the world's labels. Only training
            runs it: samplers never do, so the model generates from pixels and captions alone. A patch sees a
            part of a sprite, and an x0 loss alone never made the features say which shape the whole sprite
            is (``benchmarks/shape_probe.py``). docs/training.md ("Shapes named, not drawn") measures what
            the head changes: the features name shapes, the samples still do not draw them.
        look_codes: how many looks the model can be told, 0 for none. With ``script_ids`` on, an embedding
            (zero-started, so a grown model computes what its checkpoint computed) of
            :attr:`~moc.models.tokens.ScriptIds.looks` is added to the video tokens of the rows where a shot
            introduces a character: the story says once how the character looks, and every later shot must
            keep that look from memory. The world's looks are its six shapes; ``train.tell_looks`` sets how
            often training tells them, and samplers tell them only when asked (``moc generate
            --tell-looks``). Without them a model draws a character's shape from noise alone, and every
            model here drew only circles and squares (docs/training.md, "Shapes").
        paint_features: how many numbers tell how a character is painted, 0 for none (needs
            ``look_codes``). A linear map of :attr:`~moc.models.tokens.ScriptIds.paint` (zero-started) is
            added where ``look_in`` adds the told shape: the world's paint is the body and accent colours
            and the accent pattern (``moc.world.data.PAINT_FEATURES``). Told only the shape, a model
            chooses a character's colours where it enters, and at high noise it may blend two of them.
        scenery_features: how many numbers tell how a place is painted, 0 for none (needs ``script_ids``).
            A linear map of :attr:`~moc.models.tokens.ScriptIds.scenery` (zero-started) is added to every
            video token of the shot where a place first appears, per patch row: the world's scenery is the
            row's mean colour and the place's sky, ground, horizon and faint feature
            (``moc.world.data.SCENERY_FEATURES``). Captions never describe a place, so untold a model
            chooses its colours and feature where it first appears; told, it must keep them at revisits.
        refiner_width: channels of a convolutional refiner run over the decoded frames, 0 for none (with
            the ``mlp`` decoder or none). It is a :class:`~moc.models.dit.UNetPixelDecoder` (19x19 pixels
            seen, ``2 * refiner_width`` channels at half resolution) that reads the frames the patch head and
            the ``mlp`` decoder wrote, the noisy frames, the noise level and a projection of each token's
            features, and adds a correction: one rule shared by every pixel, reading across patch borders,
            where the patch head paints each patch from a fixed basis. Measured on stage 22's frozen trunk
            (docs/training.md, "Stage 23"), it halves the error of almost clean frames and takes a twentieth
            of the samples' background grain. Its last layer starts at zero, so a model grown from a
            checkpoint without it computes what the checkpoint computed.
        input_gate: channels of a small convolutional net that blends the model's clean estimate, per
            pixel, toward the noisy input rescaled to the frames' scale, 0 for none
            (:class:`~moc.models.dit.InputGate`). At low noise levels the input is nearly the answer, yet an
            estimate rebuilt from 8x8 patches loses the faint marks it shows (docs/training.md, "Stage 27");
            the gate lets the model keep them where it is sure of them. It starts at zero, so a model grown
            from a checkpoint without it computes what the checkpoint computed. An experiment: grown into
            stage 27 and trained 400 steps, it stayed shut (docs/training.md, "Stage 27").
        cleaner_width: channels of a frame cleaner, 0 for none (:class:`~moc.models.cleaner.FrameCleaner`):
            a residual U-Net that samplers run once over their final estimate, frame by frame
            (:meth:`~moc.models.dit.MultiShotDiT.clean`); the model's forward pass never runs it. It is
            trained apart, on the frozen model's final estimates (``train.trainable = "cleaner"``), and
            takes the grain the trunk draws into flat backgrounds (docs/training.md, "Stage 29").
        cleaner_codes: input channels per pixel that the frame cleaner reads from the trunk's final features
            of the pixel's patch, 0 for the frame alone (needs ``cleaner_width``): what the trunk knows of a
            sprite (its told or remembered shape and colours) that its drawing lost. An experiment: level
            with the frame alone on stage 30's estimates (docs/training.md, "Stage 30").
    """

    width: int = 128
    depth: int = 4
    heads: int = 4
    patch_size: int = 8
    channels: int = 3
    mlp_ratio: float = 4.0
    vocab_size: int = 64
    max_caption_tokens: int = 32
    shot_stride: int = 8
    rope_theta: float = 100.0
    attention: str = "moc"
    moc: MoCConfig = field(default_factory=lambda: MoCConfig(chunk_size=None, top_k=3))
    backend: str = "auto"
    script_ids: bool = False
    num_ids: int = 10
    time_nope_pairs: int = 0
    id_bias: bool = False
    joint_causal: bool | None = None
    decoder_width: int = 0
    decoder_kind: str = "mlp"
    stem_width: int = 0
    self_condition: bool = False
    shape_classes: int = 0
    look_codes: int = 0
    paint_features: int = 0
    scenery_features: int = 0
    refiner_width: int = 0
    input_gate: int = 0
    cleaner_width: int = 0
    cleaner_codes: int = 0

    def __post_init__(self) -> None:
        for name in (
            "width",
            "depth",
            "heads",
            "patch_size",
            "channels",
            "vocab_size",
            "max_caption_tokens",
            "shot_stride",
            "num_ids",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"model.{name} must be a positive int, got {value!r}")
        for name, what in (
            ("decoder_width", "no decoder"),
            ("stem_width", "no stem"),
            ("shape_classes", "no shape head"),
            ("look_codes", "no looks told"),
            ("paint_features", "no paint told"),
            ("scenery_features", "no scenery told"),
            ("refiner_width", "no refiner"),
            ("input_gate", "no input gate"),
            ("cleaner_width", "no cleaner"),
            ("cleaner_codes", "the cleaner reads the frame alone"),
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"model.{name} must be an int >= 0 (0: {what}), got {value!r}")
        if self.decoder_kind not in DECODER_KINDS:
            raise ValueError(f"model.decoder_kind must be one of {DECODER_KINDS}, got {self.decoder_kind!r}")
        if self.refiner_width and self.decoder_width and self.decoder_kind != "mlp":
            raise ValueError(
                "model.refiner_width needs model.decoder_kind 'mlp' or no decoder: the "
                f"{self.decoder_kind!r} decoder already refines whole frames"
            )
        if self.look_codes and not self.script_ids:
            raise ValueError("model.look_codes needs model.script_ids: looks are told in the rows of the ids")
        if self.paint_features and not self.look_codes:
            raise ValueError("model.paint_features needs model.look_codes: paint is told with the shape")
        if self.scenery_features and not self.script_ids:
            raise ValueError("model.scenery_features needs model.script_ids: scenery is told with the ids")
        if self.cleaner_codes and not self.cleaner_width:
            raise ValueError("model.cleaner_codes needs model.cleaner_width: the codes feed the cleaner")
        if self.width % self.heads:
            raise ValueError(f"model.width ({self.width}) must be divisible by model.heads ({self.heads})")
        if self.head_dim % 2 or self.head_dim < 6:
            raise ValueError(f"model head dim width/heads = {self.head_dim} must be even and >= 6 (3D RoPE)")
        if self.attention not in ATTENTION_MODES:
            raise ValueError(f"model.attention must be one of {ATTENTION_MODES}, got {self.attention!r}")
        if not isinstance(self.moc, MoCConfig):
            raise TypeError(f"model.moc must be a MoCConfig, got {type(self.moc).__name__}")
        if not self.mlp_ratio > 0:
            raise ValueError(f"model.mlp_ratio must be > 0, got {self.mlp_ratio!r}")
        time_pairs = rope_pairs(self.head_dim)[0]
        if (
            isinstance(self.time_nope_pairs, bool)
            or not isinstance(self.time_nope_pairs, int)
            or not (0 <= self.time_nope_pairs <= time_pairs)
        ):
            raise ValueError(
                f"model.time_nope_pairs must be an int in [0, {time_pairs}] (the time pairs of a "
                f"{self.head_dim}-dim head), got {self.time_nope_pairs!r}"
            )
        for name in ("script_ids", "id_bias", "self_condition"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"model.{name} must be true or false, got {getattr(self, name)!r}")
        if self.joint_causal is not None and not isinstance(self.joint_causal, bool):
            raise ValueError(f"model.joint_causal must be true, false or unset, got {self.joint_causal!r}")
        if self.id_bias and not self.script_ids:
            raise ValueError("model.id_bias needs model.script_ids = true (it compares the script's ids)")
        if self.backend not in ("auto", "reference", "varlen", "flex"):
            raise ValueError(f"model.backend must be auto, reference, varlen or flex, got {self.backend!r}")

    @property
    def head_dim(self) -> int:
        return self.width // self.heads

    @property
    def patch_dim(self) -> int:
        return self.patch_size * self.patch_size * self.channels

    def joint_routing(self, moc: MoCConfig) -> MoCConfig:
        """``moc`` as joint generation routes it: with ``joint_causal`` as its causality when that is set."""
        return moc if self.joint_causal is None else moc.replace(causal=self.joint_causal)

    def replace(self, **changes: object) -> ModelConfig:
        return replace(self, **changes)
