"""ViViT (Arnab et al., ICCV 2021), all four models, as scenic computes them: `model=vivit`."""

from mtv.models.registry import ModelFamily, register_family
from mtv.models.vivit.build import build, validate
from mtv.models.vivit.config import ViViTConfig
from mtv.models.vivit.profile import format_profile, profile_model

FAMILY = register_family(ModelFamily(
    name="vivit",
    config=ViViTConfig,
    validate=validate,
    build=build,
    profile=profile_model,
    format_profile=format_profile,
    docs="docs/models/vivit.md",
))
