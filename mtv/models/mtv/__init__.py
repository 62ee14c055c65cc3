"""MTV (Yan et al. 2022) and the baselines built from its code: SlowFast, the single-view baseline and the
ensemble. Registers the family `mtv` (also `slowfast`, `mtv_single_view`, `ensemble`)."""

from mtv.models.mtv.build import build, validate
from mtv.models.mtv.config import MTVModelConfig
from mtv.models.mtv.profile import format_profile, profile_model
from mtv.models.registry import ModelFamily, ModelInputs, register_family


def _profile(model, inputs: ModelInputs) -> dict:
    return profile_model(model, inputs.num_frames, inputs.image_size)


def _describe(cfg: MTVModelConfig) -> dict:
    """results.json fields of an MTV run."""
    variant = str(cfg.variant or "+".join(cfg.members or []))
    return {"variant": variant, "views": [v.strip() for v in variant.split("+")],
            "fusion": {"type": cfg.fusion.type, "layers": list(cfg.fusion.layers),
                       "bottleneck_tokens": cfg.fusion.bottleneck_tokens}}


FAMILY = register_family(ModelFamily(
    name="mtv",
    config=MTVModelConfig,
    validate=validate,
    build=build,
    profile=_profile,
    format_profile=format_profile,
    docs="docs/model.md",
    names=("slowfast", "mtv_single_view", "ensemble"),
    describe=_describe,
))
