"""Shared fixtures: W&B strictly offline in a temp dir, one synthetic-video cache for the whole session."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # helpers.py


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mtv_cache")


@pytest.fixture(scope="session")
def env(cache_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment for `python run.py` subprocesses: offline W&B, shared data cache, 1 thread each."""
    return {
        **os.environ,
        "WANDB_MODE": "offline",
        "WANDB_DIR": str(tmp_path_factory.mktemp("wandb")),
        "WANDB_SILENT": "true",
        "MTV_CACHE_DIR": str(cache_dir),
        "OMP_NUM_THREADS": "1",
    }
