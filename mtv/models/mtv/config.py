"""Model configuration: plain dataclasses, built from a Hydra node or a scenic config, validated up front.

Validation happens here, before any tensor is allocated, so a bad sweep row fails at start-up with one
message that names the offending key and what is allowed.

View order. The model keeps views in scenic's order: fewest tokens per clip first (largest tubelet first).
`from_cfg` accepts any written order (the paper's `B/2+S/4+Ti/8` and scenic's `Ti/8+S/4+B/2` are the same
model) and sorts stably by token count. `from_scenic` keeps the order of the scenic config as it is, since
there the order is part of the checkpoint.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Optional

from mtv.errors import ConfigError
from mtv.models.variants import EncoderSize, ViewSpec, encoder_sizes, parse_variant
from mtv.schema import to_schema

MERGE_AXES = ("channel", "time")
CLASSIFIERS = ("token", "gap")


@dataclass(frozen=True)
class ViewConfig:
    """One view: its encoder and tubelet, and which input frames it sees (`frame_stride`, SlowFast)."""

    hidden_size: int
    num_heads: int
    mlp_dim: int
    num_layers: int
    patch: tuple[int, int, int]  # (height, width, time), scenic's order
    frame_stride: int = 1
    name: str = ""  # as written, e.g. "B/2"; used for checkpoints keyed by size and for display
    size: str = ""  # encoder size name ("B"), empty when built from explicit numbers


@dataclass
class FusionConfig:
    """`model.fusion` (conf/model/fusion/*.yaml): how the views exchange information."""

    type: str = "none"  # cva | bottleneck | mlp | none (mtv.models.mtv.fusion.FUSIONS)
    layers: tuple[int, ...] = ()  # 0-based layer indices, bottom-aligned over views
    bottleneck_tokens: int = 4
    descending: bool = True  # scenic's fuse_in_descending_order: the fewer-token view queries its neighbour
    use_query_config: bool = True  # CVA width/heads follow the query view


@dataclass
class GlobalEncoderConfig:
    """`model.global_encoder`: the transformer over time on the merged view features."""

    num_layers: int = 12
    num_heads: int = 8
    mlp_dim: int = 3072
    hidden_size: int = 768  # used by merge='time' only; 'channel' runs at the sum of view widths
    merge: str = "channel"  # channel | time


@dataclass
class MTVInitConfig:
    """`model.init`: where the weights come from before training."""

    vit_checkpoints: Optional[Any] = None  # ImageNet ViT per view: {Ti: path, ...} or a list in variant order
    inflation: str = "central_frame"  # central_frame | average: 2-D patch kernels -> tubelets
    checkpoint: Optional[str] = None  # fine-tune from an MTV checkpoint (e.g. `python -m mtv.interop.convert` output)
    restore_head: bool = False  # also take the classifier from init.checkpoint


@dataclass
class MTVModelConfig:
    """The `model` node of the MTV family (conf/model/{mtv,slowfast,mtv_single_view,ensemble}.yaml).

    This dataclass is the only definition of its keys and defaults; Hydra registers it as `model/mtv_schema`.
    """

    name: str = "mtv"  # mtv | slowfast | mtv_single_view | ensemble
    variant: Optional[str] = None  # e.g. B/2+S/4+Ti/8 (conf/model/variant/*.yaml); any order
    frame_strides: Optional[list[int]] = None  # per view, as written in `variant` (SlowFast)
    encoder_sizes: Optional[dict[str, Any]] = None  # {Ti: {hidden_size, num_heads, mlp_dim, num_layers}}
    members: Optional[list[str]] = None  # model=ensemble: one single-view model per entry (default: the views)
    fusion: FusionConfig = field(default_factory=FusionConfig)
    global_encoder: GlobalEncoderConfig = field(default_factory=GlobalEncoderConfig)
    classifier: str = "token"  # token | gap
    dropout: float = 0.0
    attention_dropout: float = 0.0
    stochastic_depth: float = 0.0  # scenic model default; conf/model/mtv.yaml sets the recipe value
    init: MTVInitConfig = field(default_factory=MTVInitConfig)


@dataclass(frozen=True)
class MTVConfig:
    views: tuple[ViewConfig, ...]
    num_classes: int
    num_frames: int
    image_size: tuple[int, int]
    fusion: FusionConfig = field(default_factory=FusionConfig)
    global_encoder: GlobalEncoderConfig = field(default_factory=GlobalEncoderConfig)
    classifier: str = "token"
    dropout: float = 0.0
    attention_dropout: float = 0.0
    stochastic_depth: float = 0.0
    written_order: tuple[int, ...] = ()  # written_order[k] = model index of the k-th view as written

    # ---- derived quantities -------------------------------------------------------------------
    def temporal_tokens(self, i: int) -> int:
        view = self.views[i]
        return self.num_frames // view.frame_stride // view.patch[2]

    def spatial_grid(self, i: int) -> tuple[int, int]:
        h, w, _ = self.views[i].patch
        return self.image_size[0] // h, self.image_size[1] // w

    @property
    def t_min(self) -> int:
        return min(self.temporal_tokens(i) for i in range(len(self.views)))

    @property
    def t_max(self) -> int:
        return max(self.temporal_tokens(i) for i in range(len(self.views)))

    @property
    def depth(self) -> int:
        return max(v.num_layers for v in self.views)

    @property
    def global_width(self) -> int:
        if self.global_encoder.merge == "channel":
            return sum(v.hidden_size for v in self.views)
        return self.global_encoder.hidden_size

    @property
    def global_tokens(self) -> int:
        """Length of the global encoder's input sequence without the global CLS."""
        if self.global_encoder.merge == "channel":
            return self.t_max
        return sum(self.temporal_tokens(i) for i in range(len(self.views)))

    def cva_pairs(self) -> list[tuple[int, int]]:
        """(query, key/value) view pairs of cross-view attention, in scenic's order."""
        n = len(self.views)
        if self.fusion.descending:
            return [(k - 1, k) for k in range(n - 1, 0, -1)]
        return [(k + 1, k) for k in range(n - 1)]

    @property
    def variant(self) -> str:
        return "+".join(v.name for v in self.views)

    # ---- construction -------------------------------------------------------------------------
    @classmethod
    def from_cfg(
        cls,
        model_cfg: Mapping[str, Any],
        num_classes: int,
        num_frames: int,
        image_size: int | Sequence[int],
    ) -> MTVConfig:
        """Build from the `model` node (an MTVModelConfig, or a mapping of its keys) and validate."""
        node = to_schema(MTVModelConfig, model_cfg, "model.")
        specs = parse_variant(node.variant)
        strides = node.frame_strides or [1] * len(specs)
        strides = [int(s) for s in strides]
        if len(strides) != len(specs) or min(strides) < 1:
            raise ConfigError(
                f"model.frame_strides={strides}: give one positive integer per view of "
                f"model.variant={node.variant!r} ({len(specs)} views)"
            )
        if node.name == "slowfast":
            tubelets = [s.name for s in specs if s.patch[2] != 1]
            if tubelets:
                raise ConfigError(
                    f"model=slowfast needs temporal tubelet length 1 in every view (views differ by "
                    f"frame rate, model.frame_strides), but model.variant has {', '.join(tubelets)}; "
                    "use e.g. model.variant='B/1+Ti/1' model.frame_strides=[4,1]"
                )
        sizes = encoder_sizes(node.encoder_sizes)
        views = [_view_from_spec(spec, stride, sizes) for spec, stride in zip(specs, strides)]
        size = _image_size(image_size)
        # canonical order: fewest tokens per clip first; stable, so ties keep the written order
        def tokens(k: int) -> int:
            v = views[k]
            return (num_frames // v.frame_stride // v.patch[2]) * (size[0] // v.patch[0]) * (size[1] // v.patch[1])

        order = sorted(range(len(views)), key=tokens)
        written = tuple(order.index(k) for k in range(len(views)))
        fusion = replace(node.fusion, layers=_layers(node.fusion.layers))
        config = cls(
            views=tuple(views[k] for k in order),
            num_classes=int(num_classes),
            num_frames=int(num_frames),
            image_size=size,
            fusion=fusion,
            global_encoder=node.global_encoder,
            classifier=node.classifier,
            dropout=node.dropout,
            attention_dropout=node.attention_dropout,
            stochastic_depth=node.stochastic_depth,
            written_order=written,
        )
        config.validate()
        return config

    @classmethod
    def from_scenic(cls, config: Mapping[str, Any], image_size: int | Sequence[int] = 224) -> MTVConfig:
        """Build from scenic's config as a plain dict (`dataset_configs`, `model`), keeping its view order."""
        try:
            data = config["dataset_configs"]
            model = config["model"]
            views = []
            for i, vc in enumerate(model["view_configs"]):
                patch = tuple(int(p) for p in vc["patches"]["size"])
                views.append(
                    ViewConfig(
                        hidden_size=int(vc["hidden_size"]),
                        num_heads=int(vc["num_heads"]),
                        mlp_dim=int(vc["mlp_dim"]),
                        num_layers=int(vc["num_layers"]),
                        patch=patch,  # type: ignore[arg-type]
                        name=f"view{i}",
                    )
                )
            fusion_cfg = model.get("cross_view_fusion")
            if fusion_cfg is None or not fusion_cfg.get("fusion_layers"):
                fusion = FusionConfig()
            else:
                types = {"cross_view_attention": "cva", "bottleneck": "bottleneck"}
                if fusion_cfg.get("type") not in types:
                    raise ConfigError(
                        f"scenic config model.cross_view_fusion.type={fusion_cfg.get('type')!r}: "
                        f"expected one of {', '.join(types)}"
                    )
                fusion = FusionConfig(
                    type=types[fusion_cfg["type"]],
                    layers=_layers(fusion_cfg["fusion_layers"]),
                    bottleneck_tokens=int(fusion_cfg.get("bottleneck_tokens", 4) or 4),
                    descending=bool(fusion_cfg.get("fuse_in_descending_order", True)),
                    use_query_config=bool(fusion_cfg.get("use_query_config", True)),
                )
            g = model["global_encoder_config"]
            method = model.get("temporal_encoding_config", {}).get("method", "3d_conv")
            if method != "3d_conv":
                raise ConfigError(
                    f"scenic config model.temporal_encoding_config.method={method!r}: only '3d_conv' is supported"
                )
            if model.get("keep_spatiotemporal_features", False):
                raise ConfigError("scenic config model.keep_spatiotemporal_features=True is not supported")
            result = cls(
                views=tuple(views),
                num_classes=int(data["num_classes"]),
                num_frames=int(data["num_frames"]),
                image_size=_image_size(config.get("image_size", image_size)),
                fusion=fusion,
                global_encoder=GlobalEncoderConfig(
                    num_layers=int(g["num_layers"]),
                    num_heads=int(g["num_heads"]),
                    mlp_dim=int(g["mlp_dim"]),
                    hidden_size=int(g.get("hidden_size", 768)),
                    merge=str(g.get("merge_axis", "channel")),
                ),
                classifier=str(model.get("classifier", "token")),
                dropout=float(model.get("dropout_rate", 0.0)),
                attention_dropout=float(model.get("attention_dropout_rate", 0.1)),  # scenic's model default
                stochastic_depth=float(model.get("stochastic_depth", 0.0)),
                written_order=tuple(range(len(views))),
            )
        except KeyError as err:
            raise ConfigError(f"scenic config is missing key {err}; see tiny_cva_config.json for the layout") from err
        result.validate()
        return result

    def with_views(self, views: Sequence[ViewConfig]) -> MTVConfig:
        return replace(self, views=tuple(views))

    # ---- validation ---------------------------------------------------------------------------
    def validate(self) -> None:
        """Raise ConfigError naming the first offending value and what is allowed."""
        if not self.views:
            raise ConfigError("model.variant: at least one view is needed")
        if self.num_classes < 1:
            raise ConfigError(f"dataset.num_classes={self.num_classes}: must be >= 1")
        if self.classifier not in CLASSIFIERS:
            raise ConfigError(f"model.classifier={self.classifier!r} is not one of {', '.join(CLASSIFIERS)}")
        if self.global_encoder.merge not in MERGE_AXES:
            raise ConfigError(
                f"model.global_encoder.merge={self.global_encoder.merge!r} is not one of {', '.join(MERGE_AXES)}"
            )
        from mtv.models.mtv.fusion import FUSIONS  # the fusion types validate themselves; they import this module

        if self.fusion.type not in FUSIONS:
            raise ConfigError(f"model.fusion.type={self.fusion.type!r} is not one of {', '.join(FUSIONS)}")
        for name, rate in (("dropout", self.dropout), ("attention_dropout", self.attention_dropout),
                           ("stochastic_depth", self.stochastic_depth)):
            if not 0.0 <= rate < 1.0:
                raise ConfigError(f"model.{name}={rate}: must be in [0, 1)")
        height, width = self.image_size
        for i, view in enumerate(self.views):
            label = view.name or f"view {i}"
            h, w, t = view.patch
            if view.hidden_size % view.num_heads:
                raise ConfigError(
                    f"view {label}: {view.num_heads} heads do not divide hidden size {view.hidden_size}"
                )
            if height % h or width % w:
                raise ConfigError(
                    f"view {label}: image size {height}x{width} (data.crop_size) is not divisible by its "
                    f"{h}x{w} patch; choose a crop size that is a multiple of the patch"
                )
            frames = self.num_frames // view.frame_stride
            if self.num_frames % view.frame_stride or frames % t or frames == 0:
                raise ConfigError(
                    f"view {label}: data.num_frames={self.num_frames} (frame stride {view.frame_stride}) is not "
                    f"divisible into tubelets of {t} frames; use a multiple of {view.frame_stride * t}"
                )
        counts = [self.temporal_tokens(i) for i in range(len(self.views))]
        if any(c % self.t_min for c in counts):
            raise ConfigError(
                f"temporal token counts {counts} of the views must all be multiples of the smallest "
                f"({self.t_min}) so views align in time; change data.num_frames or the tubelets"
            )
        if self.global_encoder.merge == "channel" and any(self.t_max % c for c in counts):
            raise ConfigError(
                f"temporal token counts {counts} must all divide the largest ({self.t_max}) for the "
                "channel merge; change the tubelets or use model.global_encoder.merge=time"
            )
        if self.global_width % self.global_encoder.num_heads:
            raise ConfigError(
                f"model.global_encoder.num_heads={self.global_encoder.num_heads} does not divide the global "
                f"width {self.global_width} (sum of view widths for merge=channel)"
            )
        FUSIONS[self.fusion.type].validate(self)


def _view_from_spec(spec: ViewSpec, stride: int, sizes: Mapping[str, EncoderSize]) -> ViewConfig:
    size = sizes[spec.size]
    name = spec.name if stride == 1 else f"{spec.name}@{stride}"
    return ViewConfig(size.hidden_size, size.num_heads, size.mlp_dim, size.num_layers, spec.patch, stride, name,
                      spec.size)


def _image_size(value: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(value, int):
        return (value, value)
    values = tuple(int(v) for v in value)
    if len(values) != 2:
        raise ConfigError(f"data.crop_size={value!r}: give one integer or (height, width)")
    return values  # type: ignore[return-value]


def _layers(value: Any) -> tuple[int, ...]:
    if value is None:
        return ()
    if isinstance(value, int):
        return (value,)
    try:
        return tuple(sorted({int(v) for v in value}))
    except (TypeError, ValueError) as err:
        raise ConfigError(f"model.fusion.layers={value!r}: expected a list of 0-based layer indices") from err
