"""Video data for MTV: dataset formats, decoding (decord, PyAV fallback), sampling, augmentation and
the synthetic dataset. See docs/data.md."""
from .datamodule import VideoDataModule, build_datamodule
from .mixup import MixupCutmix

__all__ = ["VideoDataModule", "build_datamodule", "MixupCutmix"]
