"""Encoder sizes and the variant grammar (`B/2+S/4+Ti/8`, `H/2`, `B/16x2`, `B/16x16x2`).

A variant names one encoder per view: `<size>/<tubelet>` joined by `+`. The tubelet is `T` (the size's
default square patch, T frames), `PxT` (P x P patch) or `HxWxT`. Views may be written in any order;
`mtv.models.mtv.config` puts them in the model's canonical order (fewest tokens first, as scenic does).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from mtv.errors import ConfigError


@dataclass(frozen=True)
class EncoderSize:
    """A standard ViT encoder size (so each view can start from the matching ImageNet ViT)."""

    hidden_size: int
    num_heads: int
    mlp_dim: int
    num_layers: int
    patch: int


ENCODER_SIZES: dict[str, EncoderSize] = {
    "Ti": EncoderSize(192, 3, 768, 12, 16),
    "S": EncoderSize(384, 6, 1536, 12, 16),
    "B": EncoderSize(768, 12, 3072, 12, 16),
    "L": EncoderSize(1024, 16, 4096, 24, 16),
    "H": EncoderSize(1280, 16, 5120, 32, 14),
}



def encoder_sizes(overrides: Mapping[str, Any] | None) -> dict[str, EncoderSize]:
    """ENCODER_SIZES with `model.encoder_sizes` applied (e.g. shrunk encoders for smoke tests)."""
    sizes = dict(ENCODER_SIZES)
    allowed = {f.name for f in fields(EncoderSize)}
    for name, values in (overrides or {}).items():
        if name not in sizes:
            raise ConfigError(f"model.encoder_sizes.{name}: unknown encoder size; allowed {', '.join(sizes)}")
        unknown = set(values) - allowed
        if unknown:
            raise ConfigError(
                f"model.encoder_sizes.{name}: unknown keys {sorted(unknown)}; allowed {', '.join(sorted(allowed))}"
            )
        sizes[name] = replace(sizes[name], **{key: int(value) for key, value in values.items()})
    return sizes


_TUBELET = re.compile(r"^(\d+)(?:x(\d+))?(?:x(\d+))?$")


@dataclass(frozen=True)
class ViewSpec:
    """One view as written in a variant string: encoder size name and tubelet (height, width, time)."""

    size: str
    patch: tuple[int, int, int]

    @property
    def name(self) -> str:
        h, w, t = self.patch
        default = ENCODER_SIZES[self.size].patch
        if h == w == default:
            return f"{self.size}/{t}"
        return f"{self.size}/{h}x{t}" if h == w else f"{self.size}/{h}x{w}x{t}"


def parse_view(text: str) -> ViewSpec:
    """Parse one `<size>/<tubelet>` view."""
    size, sep, tubelet = text.strip().partition("/")
    if not sep or size not in ENCODER_SIZES:
        raise ConfigError(
            f"model.variant: bad view {text!r}: expected <size>/<tubelet> with size one of "
            f"{', '.join(ENCODER_SIZES)} (e.g. 'B/2', 'H/2', 'B/16x2', 'B/16x16x2')"
        )
    match = _TUBELET.match(tubelet.strip())
    if not match:
        raise ConfigError(
            f"model.variant: bad tubelet {tubelet!r} in view {text!r}: expected T, PxT or HxWxT "
            "with positive integers (e.g. '2', '16x2', '16x16x2')"
        )
    numbers = [int(g) for g in match.groups() if g is not None]
    if len(numbers) == 1:
        p = ENCODER_SIZES[size].patch
        patch = (p, p, numbers[0])
    elif len(numbers) == 2:
        patch = (numbers[0], numbers[0], numbers[1])
    else:
        patch = (numbers[0], numbers[1], numbers[2])
    if min(patch) < 1:
        raise ConfigError(f"model.variant: tubelet sizes must be >= 1 in view {text!r}")
    return ViewSpec(size, patch)


def parse_variant(variant: str) -> list[ViewSpec]:
    """Parse a variant string into views, in the order written."""
    if not isinstance(variant, str) or not variant.strip():
        raise ConfigError(f"model.variant: expected a string such as 'B/2+S/4+Ti/8', got {variant!r}")
    return [parse_view(part) for part in variant.split("+")]
