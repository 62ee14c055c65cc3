"""Video data for MTV: dataset formats, decoding (decord, PyAV fallback), sampling, augmentation,
the synthetic dataset and multi-view evaluation. See docs/data.md."""
from .datamodule import VideoDataModule, build_datamodule
from .mixup import MixupCutmix
from .multiview import MultiViewAggregator

__all__ = ["VideoDataModule", "build_datamodule", "MixupCutmix", "MultiViewAggregator"]
