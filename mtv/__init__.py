"""MTV: Multiview Transformers for Video Recognition, with ViViT-FE and SlowFast as configurations."""

from mtv.build import build_model
from mtv.config import MTVConfig
from mtv.ensemble import Ensemble
from mtv.errors import ConfigError
from mtv.model import MTV

__all__ = ["MTV", "MTVConfig", "ConfigError", "Ensemble", "build_model"]
