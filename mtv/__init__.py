"""mtv: video transformers (MTV, and the models it is compared with) in PyTorch Lightning + Hydra."""

from mtv.errors import ConfigError
from mtv.models import build_model, get_family, register_family
from mtv.models.ensemble import Ensemble
from mtv.models.mtv.config import MTVConfig
from mtv.models.mtv.model import MTV

__all__ = ["MTV", "MTVConfig", "ConfigError", "Ensemble", "build_model", "get_family", "register_family"]
