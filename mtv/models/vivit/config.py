"""ViViT's `model` node (the Hydra schema) and the resolved architecture every other module reads.

`ViViTConfig` is what a user writes (`model.variant=B/2 model.attention=factorized_encoder`); `resolve`
turns it, with the data's `ModelInputs`, into a frozen `ViViTSpec` of plain numbers and raises one
`ConfigError` per rule, naming the key and the fix, before any tensor exists. `spec_from_scenic` builds the
same `ViViTSpec` from a scenic ViViT config, so both paths meet in one model class.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Dict, Optional

from mtv.errors import ConfigError
from mtv.models.registry import ModelInputs
from mtv.models.variants import encoder_sizes, parse_variant
from mtv.schema import to_schema

SPACETIME = "spacetime"  # model 1: joint attention over all tokens
FACTORIZED_ENCODER = "factorized_encoder"  # model 2: spatial ViT per frame slot, then a temporal transformer
FACTORIZED_SELF_ATTENTION = "factorized_self_attention"  # model 3: spatial, then temporal attention per block
FACTORIZED_DOT_PRODUCT = "factorized_dot_product"  # model 4: half the heads over space, half over time
ATTENTIONS = (SPACETIME, FACTORIZED_ENCODER, FACTORIZED_SELF_ATTENTION, FACTORIZED_DOT_PRODUCT)
# scenic's `model.attention_config.type` strings (and the legacy model-3 name of its old configs)
SCENIC_ATTENTIONS = {
    "spacetime": SPACETIME,
    "factorized_encoder": FACTORIZED_ENCODER,
    "factorized_self_attention_block": FACTORIZED_SELF_ATTENTION,
    "factorised_space_time": FACTORIZED_SELF_ATTENTION,
    "factorized_dot_product_attention": FACTORIZED_DOT_PRODUCT,
}
MODEL_NUMBER = {SPACETIME: 1, FACTORIZED_ENCODER: 2, FACTORIZED_SELF_ATTENTION: 3, FACTORIZED_DOT_PRODUCT: 4}
ATTENTION_ORDERS = ("space_time", "time_space")
CLASSIFIERS = ("token", "gap")
INFLATIONS = ("central_frame", "average")
POSEMB_CHANGES = ("tile", "resize_tile", "resize")


@dataclass
class TemporalEncoderConfig:
    """Model 2's temporal transformer (scenic `model.temporal_transformer`); its width is the encoder's."""

    num_layers: int = 4  # scenic: 4 in the B config, 24 in the L config
    num_heads: Optional[int] = None  # None: the encoder size's heads
    mlp_dim: Optional[int] = None  # None: the encoder size's MLP width


@dataclass
class ViViTInitConfig:
    """Where the weights come from after scenic's random init (scenic's `init_from`)."""

    vit_checkpoint: Optional[str] = None  # ImageNet ViT (.npz / timm) of the encoder size: the spatial parts
    inflation: str = "central_frame"  # central_frame | average: 2-D patch kernel -> tubelet
    posemb_change: str = "tile"  # tile | resize_tile | resize: scenic's positional_embed_size_change
    checkpoint: Optional[str] = None  # a ViViT checkpoint of this project (e.g. converted from scenic)
    restore_head: bool = False  # also take the classifier from `checkpoint`


@dataclass
class ViViTConfig:
    """The whole `model` node of `model=vivit`."""

    name: str = "vivit"
    variant: str = "B/2"  # one encoder: <size>/<tubelet>, B/2 = ViViT-B/16x2
    attention: str = SPACETIME  # spacetime | factorized_encoder | factorized_self_attention | factorized_dot_product
    attention_order: str = "space_time"  # model 3: space_time (spatial attention first) | time_space
    temporal_encoder: TemporalEncoderConfig = field(default_factory=TemporalEncoderConfig)
    encoder_sizes: Optional[Dict[str, Any]] = None  # {B: {hidden_size: 48, ...}}: shrink (smoke / CPU scale)
    classifier: str = "token"  # token | gap; models 3 and 4 need gap
    dropout: float = 0.0
    attention_dropout: float = 0.0
    stochastic_depth: float = 0.0  # scenic's stochastic_droplayer_rate; model 3 has none
    init: ViViTInitConfig = field(default_factory=ViViTInitConfig)


@dataclass(frozen=True)
class ViViTSpec:
    """The resolved architecture: numbers only, validated."""

    attention: str
    hidden_size: int
    num_heads: int
    mlp_dim: int
    num_layers: int
    patch: tuple[int, int, int]  # (height, width, time), scenic's order
    num_classes: int
    num_frames: int
    image_size: tuple[int, int]
    classifier: str = "token"
    attention_order: str = "space_time"
    temporal_layers: int = 4
    temporal_heads: int = 12
    temporal_mlp_dim: int = 3072
    dropout: float = 0.0
    attention_dropout: float = 0.0
    stochastic_depth: float = 0.0
    label: str = ""  # display name of the encoder, e.g. "B/2"

    @property
    def grid(self) -> tuple[int, int, int]:
        """Tokens along (time, height, width)."""
        h, w, t = self.patch
        return self.num_frames // t, self.image_size[0] // h, self.image_size[1] // w

    @property
    def spatial_tokens(self) -> int:
        _, nh, nw = self.grid
        return nh * nw

    @property
    def has_cls(self) -> bool:
        return self.classifier == "token"

    @property
    def model_number(self) -> int:
        return MODEL_NUMBER[self.attention]

    def validate(self) -> None:
        """Every cross-field rule, in the order a user would fix them."""
        if self.attention not in ATTENTIONS:
            raise ConfigError(f"model.attention={self.attention!r} is not one of {', '.join(ATTENTIONS)}")
        if self.classifier not in CLASSIFIERS:
            raise ConfigError(f"model.classifier={self.classifier!r} is not one of {', '.join(CLASSIFIERS)}")
        if self.classifier == "token" and self.attention in (FACTORIZED_SELF_ATTENTION, FACTORIZED_DOT_PRODUCT):
            raise ConfigError(
                f"model.classifier=token does not work with model.attention={self.attention}: its attention "
                "never mixes all tokens in one sequence (each sequence is one frame or one spatial location), so "
                "a single CLS token could not gather the whole clip; scenic refuses it too. Set "
                "model.classifier=gap"
            )
        if self.attention_order not in ATTENTION_ORDERS:
            raise ConfigError(
                f"model.attention_order={self.attention_order!r} is not one of {', '.join(ATTENTION_ORDERS)}"
            )
        if self.num_classes < 1:
            raise ConfigError(f"dataset.num_classes={self.num_classes}: must be >= 1")
        for key, rate in (("dropout", self.dropout), ("attention_dropout", self.attention_dropout),
                          ("stochastic_depth", self.stochastic_depth)):
            if not 0.0 <= rate < 1.0:
                raise ConfigError(f"model.{key}={rate}: must be in [0, 1)")
        if self.hidden_size % self.num_heads:
            raise ConfigError(
                f"model.variant={self.label!r}: {self.num_heads} heads do not divide the width {self.hidden_size}; "
                "change model.encoder_sizes"
            )
        if self.attention == FACTORIZED_DOT_PRODUCT and self.num_heads % 2:
            raise ConfigError(
                f"model.attention=factorized_dot_product splits the heads in two halves (time, space), but "
                f"model.variant={self.label!r} has {self.num_heads} heads; use an even head count "
                "(model.encoder_sizes)"
            )
        if self.attention == FACTORIZED_ENCODER:
            if self.temporal_layers < 1:
                raise ConfigError(f"model.temporal_encoder.num_layers={self.temporal_layers}: must be >= 1")
            if self.hidden_size % self.temporal_heads:
                raise ConfigError(
                    f"model.temporal_encoder.num_heads={self.temporal_heads} does not divide the width "
                    f"{self.hidden_size}"
                )
        h, w, t = self.patch
        height, width = self.image_size
        if height % h or width % w:
            raise ConfigError(
                f"model.variant={self.label!r}: image size {height}x{width} (data.crop_size) is not divisible by "
                f"the {h}x{w} patch; use a crop size that is a multiple of the patch"
            )
        if self.num_frames % t or self.num_frames < t:
            raise ConfigError(
                f"model.variant={self.label!r}: data.num_frames={self.num_frames} is not divisible into tubelets "
                f"of {t} frames; use a multiple of {t}"
            )


def resolve(cfg: ViViTConfig, inputs: ModelInputs) -> ViViTSpec:
    """The validated architecture of `cfg` for these inputs (the family's `validate` and `build` call it)."""
    attention = SCENIC_ATTENTIONS.get(cfg.attention, cfg.attention)
    if attention not in ATTENTIONS:
        raise ConfigError(
            f"model.attention={cfg.attention!r} is not one of {', '.join(ATTENTIONS)} "
            f"(scenic's names {', '.join(SCENIC_ATTENTIONS)} are accepted too)"
        )
    views = parse_variant(cfg.variant)
    if len(views) != 1:
        raise ConfigError(f"model.variant={cfg.variant!r}: ViViT has one encoder; write one view such as 'B/2'")
    view = views[0]
    size = encoder_sizes(cfg.encoder_sizes)[view.size]
    temporal = cfg.temporal_encoder
    init = cfg.init
    if init.inflation not in INFLATIONS:
        raise ConfigError(f"model.init.inflation={init.inflation!r} is not one of {', '.join(INFLATIONS)}")
    if init.posemb_change not in POSEMB_CHANGES:
        raise ConfigError(f"model.init.posemb_change={init.posemb_change!r} is not one of {', '.join(POSEMB_CHANGES)}")
    spec = ViViTSpec(
        attention=attention,
        hidden_size=size.hidden_size,
        num_heads=size.num_heads,
        mlp_dim=size.mlp_dim,
        num_layers=size.num_layers,
        patch=view.patch,
        num_classes=int(inputs.num_classes),
        num_frames=int(inputs.num_frames),
        image_size=(int(inputs.image_size[0]), int(inputs.image_size[1])),
        classifier=cfg.classifier,
        attention_order=cfg.attention_order,
        temporal_layers=int(temporal.num_layers),
        temporal_heads=int(temporal.num_heads or size.num_heads),
        temporal_mlp_dim=int(temporal.mlp_dim or size.mlp_dim),
        dropout=float(cfg.dropout),
        attention_dropout=float(cfg.attention_dropout),
        stochastic_depth=float(cfg.stochastic_depth),
        label=view.name,
    )
    spec.validate()
    return spec


def config_from_dict(node: Mapping[str, Any]) -> ViViTConfig:
    """A `ViViTConfig` from a plain `model` node (e.g. a converted checkpoint's `model_cfg`), unknown keys
    refused (mtv.schema)."""
    return to_schema(ViViTConfig, node, "model.")


def spec_from_scenic(config: Mapping[str, Any], num_classes: int, image_size: tuple[int, int]) -> ViViTSpec:
    """The architecture of a scenic ViViT config (`dataset_configs`, `model` as plain dicts).

    The class count and image size are passed in: scenic takes the classes from the dataset, not the config.
    """
    model = dict(config.get("model") or {})
    attention_cfg = dict(model.get("attention_config") or {})
    kind = attention_cfg.get("type", "spacetime")
    if kind == "factorized_transformer_block":
        raise ConfigError(
            "scenic config model.attention_config.type='factorized_transformer_block' is accepted by scenic's "
            "config checks but not implemented by its Encoder; no checkpoint can exist for it"
        )
    if kind not in SCENIC_ATTENTIONS:
        raise ConfigError(
            f"scenic config model.attention_config.type={kind!r}: expected one of {', '.join(SCENIC_ATTENTIONS)}"
        )
    attention = SCENIC_ATTENTIONS[kind]
    method = (model.get("temporal_encoding_config") or {}).get("method", "3d_conv")
    if method != "3d_conv":
        raise ConfigError(
            f"scenic config model.temporal_encoding_config.method={method!r}: only '3d_conv' is supported"
        )
    if model.get("representation_size") is not None:
        raise ConfigError("scenic config model.representation_size is set: a pre-logits layer is not supported")
    if attention == FACTORIZED_SELF_ATTENTION and "attention_order" not in attention_cfg:
        raise ConfigError(
            "scenic config model.attention_config.attention_order is missing: scenic's model 3 needs it "
            "(space_time or time_space)"
        )
    try:
        hidden = int(model["hidden_size"])
        if attention == FACTORIZED_ENCODER:
            spatial, temporal = dict(model["spatial_transformer"]), dict(model["temporal_transformer"])
        else:
            spatial = temporal = model
        spec = ViViTSpec(
            attention=attention,
            hidden_size=hidden,
            num_heads=int(spatial["num_heads"]),
            mlp_dim=int(spatial["mlp_dim"]),
            num_layers=int(spatial["num_layers"]),
            patch=tuple(int(p) for p in model["patches"]["size"]),  # type: ignore[arg-type]
            num_classes=int(num_classes),
            num_frames=int(config["dataset_configs"]["num_frames"]),
            image_size=image_size,
            classifier=str(model.get("classifier", "token")),
            attention_order=str(attention_cfg.get("attention_order", "space_time")),
            temporal_layers=int(temporal["num_layers"]),
            temporal_heads=int(temporal["num_heads"]),
            temporal_mlp_dim=int(temporal["mlp_dim"]),
            dropout=float(model.get("dropout_rate", 0.1)),  # scenic's defaults when a config omits them
            attention_dropout=float(model.get("attention_dropout_rate", 0.1)),
            stochastic_depth=float(model.get("stochastic_droplayer_rate") or 0.0),
            label="scenic",
        )
    except (KeyError, TypeError) as err:
        raise ConfigError(f"scenic ViViT config is missing key {err}; see tiny_model1_spacetime_config.json") from err
    spec.validate()
    return spec
