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
from typing import Any

from mtv.errors import ConfigError
from mtv.models.variants import EncoderSize, ViewSpec, encoder_sizes, parse_variant

FUSION_TYPES = ("cva", "bottleneck", "mlp", "none")
MERGE_AXES = ("channel", "time")
CLASSIFIERS = ("token", "gap")
MODEL_NAMES = ("mtv", "vivit_fe", "slowfast", "ensemble")
MODEL_KEYS = frozenset({
    "name", "variant", "frame_strides", "encoder_sizes", "members", "fusion", "global_encoder", "classifier",
    "dropout", "attention_dropout", "stochastic_depth", "init",
})
FUSION_KEYS = frozenset({"type", "layers", "bottleneck_tokens", "descending", "use_query_config"})
GLOBAL_ENCODER_KEYS = frozenset({"num_layers", "num_heads", "mlp_dim", "hidden_size", "merge"})


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


@dataclass(frozen=True)
class FusionConfig:
    type: str = "none"
    layers: tuple[int, ...] = ()
    bottleneck_tokens: int = 4
    descending: bool = True  # scenic's fuse_in_descending_order: the fewer-token view queries its neighbour
    use_query_config: bool = True  # CVA width/heads follow the query view


@dataclass(frozen=True)
class GlobalEncoderConfig:
    num_layers: int = 12
    num_heads: int = 8
    mlp_dim: int = 3072
    hidden_size: int = 768  # used by merge='time' only; 'channel' runs at the sum of view widths
    merge: str = "channel"


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
        """Build from the Hydra `model` node (schema in docs/architecture.md) and validate."""
        _reject_unknown(model_cfg, MODEL_KEYS, "model.")
        _reject_unknown(model_cfg.get("fusion"), FUSION_KEYS, "model.fusion.")
        _reject_unknown(model_cfg.get("global_encoder"), GLOBAL_ENCODER_KEYS, "model.global_encoder.")
        name = str(model_cfg.get("name", "mtv"))
        if name not in MODEL_NAMES:
            raise ConfigError(f"model.name={name!r} is not one of {', '.join(MODEL_NAMES)}")
        specs = parse_variant(model_cfg.get("variant"))
        strides = model_cfg.get("frame_strides") or [1] * len(specs)
        strides = [int(s) for s in strides]
        if len(strides) != len(specs) or min(strides) < 1:
            raise ConfigError(
                f"model.frame_strides={strides}: give one positive integer per view of "
                f"model.variant={model_cfg.get('variant')!r} ({len(specs)} views)"
            )
        if name == "slowfast":
            tubelets = [s.name for s in specs if s.patch[2] != 1]
            if tubelets:
                raise ConfigError(
                    f"model=slowfast needs temporal tubelet length 1 in every view (views differ by "
                    f"frame rate, model.frame_strides), but model.variant has {', '.join(tubelets)}; "
                    "use e.g. model.variant='B/1+Ti/1' model.frame_strides=[4,1]"
                )
        sizes = encoder_sizes(model_cfg.get("encoder_sizes"))
        views = [_view_from_spec(spec, stride, sizes) for spec, stride in zip(specs, strides)]
        size = _image_size(image_size)
        # canonical order: fewest tokens per clip first; stable, so ties keep the written order
        def tokens(k: int) -> int:
            v = views[k]
            return (num_frames // v.frame_stride // v.patch[2]) * (size[0] // v.patch[0]) * (size[1] // v.patch[1])

        order = sorted(range(len(views)), key=tokens)
        written = tuple(order.index(k) for k in range(len(views)))
        fusion_cfg = model_cfg.get("fusion") or {}
        fusion = FusionConfig(
            type=str(fusion_cfg.get("type", "none")),
            layers=_layers(fusion_cfg.get("layers", ())),
            bottleneck_tokens=int(fusion_cfg.get("bottleneck_tokens", 4)),
            descending=bool(fusion_cfg.get("descending", True)),
            use_query_config=bool(fusion_cfg.get("use_query_config", True)),
        )
        g = model_cfg.get("global_encoder") or {}
        global_encoder = GlobalEncoderConfig(
            num_layers=int(g.get("num_layers", 12)),
            num_heads=int(g.get("num_heads", 8)),
            mlp_dim=int(g.get("mlp_dim", 3072)),
            hidden_size=int(g.get("hidden_size", 768)),
            merge=str(g.get("merge", "channel")),
        )
        config = cls(
            views=tuple(views[k] for k in order),
            num_classes=int(num_classes),
            num_frames=int(num_frames),
            image_size=size,
            fusion=fusion,
            global_encoder=global_encoder,
            classifier=str(model_cfg.get("classifier", "token")),
            dropout=float(model_cfg.get("dropout", 0.0)),
            attention_dropout=float(model_cfg.get("attention_dropout", 0.0)),
            stochastic_depth=float(model_cfg.get("stochastic_depth", 0.0)),
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
        if self.fusion.type not in FUSION_TYPES:
            raise ConfigError(f"model.fusion.type={self.fusion.type!r} is not one of {', '.join(FUSION_TYPES)}")
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
        self._validate_fusion(counts)

    def _validate_fusion(self, counts: list[int]) -> None:
        fusion = self.fusion
        if fusion.type == "none":
            return
        if not fusion.layers:
            raise ConfigError(f"model.fusion.layers is empty for fusion type {fusion.type!r}; give 0-based layers")
        bad = [layer for layer in fusion.layers if not 0 <= layer < self.depth]
        if bad:
            raise ConfigError(
                f"model.fusion.layers={list(fusion.layers)}: {bad} outside the views' depth; allowed 0..{self.depth - 1}"
            )
        if len(self.views) < 2 and fusion.type == "mlp":
            raise ConfigError("model.fusion.type=mlp needs at least two views")
        if fusion.type == "cva":
            for q, kv in self.cva_pairs():
                src = self.views[q] if fusion.use_query_config else self.views[kv]
                if src.hidden_size % src.num_heads:
                    raise ConfigError(f"cross-view attention {q}<-{kv}: heads do not divide width")
        if fusion.type == "bottleneck" and fusion.bottleneck_tokens < 1:
            raise ConfigError(f"model.fusion.bottleneck_tokens={fusion.bottleneck_tokens}: must be >= 1")
        if fusion.type == "mlp":
            for i in range(len(self.views) - 1):
                if counts[i + 1] % counts[i]:
                    raise ConfigError(
                        f"model.fusion.type=mlp: view {i + 1} has {counts[i + 1]} temporal tokens, not a multiple "
                        f"of view {i}'s {counts[i]}"
                    )


def _reject_unknown(node: Mapping[str, Any] | None, allowed: frozenset[str], where: str) -> None:
    unknown = sorted(set(node or {}) - allowed)
    if unknown:
        raise ConfigError(
            f"unknown key(s) {', '.join(where + k for k in unknown)}; allowed: {', '.join(sorted(allowed))}"
        )


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
