"""MTV: Multiview Transformers for Video Recognition, with ViViT-FE and SlowFast as configurations."""

from mtv.models.mtv.build import build_model
from mtv.models.mtv.config import MTVConfig
from mtv.models.mtv.ensemble import Ensemble
from mtv.errors import ConfigError
from mtv.models.mtv.model import MTV

__all__ = ["MTV", "MTVConfig", "ConfigError", "Ensemble", "build_model"]
