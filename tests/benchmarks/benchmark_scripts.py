"""The scripts under benchmarks/ as modules, for the tests that call their functions directly."""

from __future__ import annotations

import functools
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@functools.cache
def load_script(name: str) -> ModuleType:
    """benchmarks/<name>.py (not in a package); registered in sys.modules first, as its dataclasses need."""
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
