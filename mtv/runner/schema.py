"""The run config's schema: the top-level keys of conf/config.yaml as dataclasses, registered in Hydra's
ConfigStore together with each model family's schema (`model/<family>_schema`), the data recipe and the
dataset schema of each annotation format (`dataset/<format>_schema`).

Hydra then checks types and rejects overrides of undeclared keys; `mtv.schema.unknown_keys` also
catches keys added with `+`. Groups without a fixed schema (Lightning's Trainer arguments, `_target_`
loggers and callbacks) are checked in mtv.runner.checks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from datamodules.config import DataConfig
from datamodules.dataset_config import DATASET_SCHEMAS
from mtv.models import families
from mtv.training.optim import OptimConfig

TASKS = ("train", "eval", "profile", "predict")


@dataclass
class TrainConfig:
    test_after_fit: bool = True  # test the best checkpoint with multi-view evaluation after training
    compile: bool = False  # torch.compile the model
    activation_checkpointing: bool = False


@dataclass
class AblationConfig:
    """Set by conf/row/* in Table 1 sweeps."""

    table: str = MISSING
    row: str = MISSING


@dataclass
class PathsConfig:
    """Relative paths are relative to the directory run.py is started from (Hydra does not chdir)."""

    log_dir: str = "outputs"
    data_dir: str = "${oc.env:MTV_DATA_DIR,data}"
    cache_dir: str = "${oc.env:MTV_CACHE_DIR,.cache}"
    output_dir: str = "${hydra:runtime.output_dir}"


@dataclass
class RunConfig:
    """Everything one job of run.py reads (docs/experiments.md)."""

    task: str = "train"  # train | eval | profile | predict
    experiment_name: str = "default"  # W&B group and table title; experiment files set it
    run_name: Optional[str] = None  # W&B run name; null: built from the job's overrides
    seed: int = 0
    resume: Any = False  # true: continue this job's directory from checkpoints/last.ckpt; or a run directory
    ckpt_path: Optional[str] = None  # task=eval: one checkpoint
    ckpt_paths: Optional[list[str]] = None  # task=eval: several checkpoints, evaluated as an ensemble
    inputs: Any = None  # task=predict: a video file, a folder, a .txt list of paths, or a list of these
    top_k: int = 5  # task=predict and test_predictions.csv: classes listed per video
    ablation: Optional[AblationConfig] = None
    train: TrainConfig = field(default_factory=TrainConfig)
    dataset: Any = MISSING  # conf/dataset/*.yaml; its schema is the format's (dataset/<format>_schema)
    data: DataConfig = field(default_factory=DataConfig)
    model: Any = MISSING  # conf/model/*.yaml; its schema is the family's (model/<family>_schema)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: dict[str, Any] = field(default_factory=dict)  # keyword arguments of lightning.Trainer
    logger: dict[str, Any] = field(default_factory=dict)  # {name: {_target_: a lightning Logger, ...}}
    callbacks: dict[str, Any] = field(default_factory=dict)  # {name: {_target_: a lightning Callback, ...}}
    paths: PathsConfig = field(default_factory=PathsConfig)


def register_schemas() -> None:
    """Store the schemas in Hydra's ConfigStore (idempotent): `run_schema`, `data/data_schema`,
    `dataset/<format>_schema` and `model/<family>_schema`."""
    store = ConfigStore.instance()
    store.store(name="run_schema", node=RunConfig)
    store.store(group="data", name="data_schema", node=DataConfig)
    for fmt, schema in DATASET_SCHEMAS.items():
        store.store(group="dataset", name=f"{fmt}_schema", node=schema)
    for family in set(families().values()):
        store.store(group="model", name=f"{family.name}_schema", node=family.config)
