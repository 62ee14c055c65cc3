"""MoA-Transformer (Patel et al. 2022): local windows plus multi-resolution overlapped global attention."""

from mtv.models.moa.build import build_model
from mtv.models.moa.config import MoAConfig, validate
from mtv.models.moa.profile import format_profile, profile_model
from mtv.models.registry import ModelFamily, register_family

PRESETS = ("moa_tiny", "moa_small", "moa_base", "moa_tiny_32", "moa_base_32")

FAMILY = register_family(ModelFamily(
    name="moa",
    config=MoAConfig,
    validate=validate,
    build=build_model,
    profile=profile_model,
    format_profile=format_profile,
    docs="docs/models/moa.md",
    names=PRESETS,
))
