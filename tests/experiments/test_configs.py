"""Config composition (real Hydra compose), the Table 1 definitions, and start-up errors for bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import REPO, run_py
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException
from omegaconf import DictConfig, OmegaConf, open_dict

import mtv.runner.resolvers  # noqa: F401
from datamodules.dataset_config import DATASET_SCHEMAS
from experiments import configs
from experiments.ablations import TABLES
from mtv import ConfigError
from mtv.runner.checks import check_config, check_required
from mtv.runner.models import validate_model_of


def compose_job(*overrides: str, choices: dict | None = None) -> DictConfig:
    """The config one job of run.py would get (hydra node removed, interpolations resolved)."""
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=[*overrides, "paths.output_dir=/tmp/unused"], return_hydra_config=True)
    if choices is not None:
        choices.update(cfg.hydra.runtime.choices)  # the option chosen in each config group
    with open_dict(cfg):
        del cfg.hydra
    check_required(cfg)
    OmegaConf.resolve(cfg)
    return cfg


def test_generated_experiment_and_row_files_are_up_to_date() -> None:
    assert configs.main(["--check"]) == 0, "run `python -m experiments.configs`"


@pytest.mark.parametrize("table", sorted(TABLES))
def test_every_table1_row_composes_to_its_definition(table: str) -> None:
    """Each row of each sweep, at smoke size: the row's settings land in the model config, and the
    model config is valid (checked without building tensors)."""
    experiment = OmegaConf.load(REPO / "conf/experiment" / f"{table}.yaml")
    swept = experiment.hydra.sweeper.params[f"+row/{table}"].split(",")
    assert swept == [row.name for row in TABLES[table].rows]
    for row in TABLES[table].rows:
        choices: dict = {}
        cfg = compose_job(f"experiment={table}", "debug=smoke", f"+row/{table}={row.name}", choices=choices)
        assert cfg.ablation == {"table": table, "row": row.name}
        assert cfg.experiment_name == table and cfg.dataset.name == "synthetic"
        for key, value in row.overrides.items():
            if key == "model/variant":
                assert cfg.model.variant == OmegaConf.load(REPO / "conf/model/variant" / f"{value}.yaml").variant
            elif key == "model/fusion":
                assert cfg.model.fusion.type == value
            elif key == "model":
                assert choices["model"] == value
            else:
                assert OmegaConf.select(cfg, key) == value
        check_config(cfg)
        validate_model_of(cfg)


def test_recipes_carry_scenic_hyper_parameters() -> None:
    root = ("dataset.root=/nonexistent",)
    k400 = compose_job("experiment=k400_mtv_b", *root)
    assert (k400.model.variant, list(k400.model.fusion.layers)) == ("B/2+S/4+Ti/8", [5, 11])
    assert (k400.optim.name, k400.optim.lr, k400.optim.momentum, k400.optim.weight_decay) == ("sgd", 0.1, 0.9, 0.0)
    assert (k400.data.num_frames, k400.data.stride, k400.data.crop_size) == (32, 2, 224)
    assert k400.data.batch_size * k400.trainer.devices == 64 and k400.trainer.max_epochs == 30
    assert k400.model.encoder_sizes is None and k400.model.global_encoder.num_layers == 12
    assert compose_job("experiment=k600_mtv_b", *root).optim.lr == 0.2
    assert compose_job("experiment=k700_mtv_b", *root).model.stochastic_depth == 0.0
    k600l = compose_job("experiment=k600_mtv_l", *root)
    assert k600l.model.variant == "L/2+B/4+S/8+Ti/16" and list(k600l.model.fusion.layers) == [11, 23]
    ssv2 = compose_job("experiment=ssv2_mtv_b", *root)
    assert (ssv2.data.num_frames, ssv2.optim.lr, ssv2.trainer.max_epochs) == (48, 0.2, 60)
    assert ssv2.data.batch_size * ssv2.trainer.devices == 256
    epic = compose_job("experiment=epic_mtv_b", *root)
    assert epic.dataset.heads == {"noun": 300, "verb": 97} and epic.data.num_frames == 64
    mit = compose_job("experiment=mit_mtv_l", *root)
    assert (mit.data.stride, mit.optim.lr, mit.trainer.max_epochs, mit.data.test_clips) == (3, 0.2, 20, 1)


def test_launchers_compose() -> None:
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        slurm = compose("config", overrides=["hydra/launcher=slurm", "trainer=multi_node"], return_hydra_config=True)
        parallel = compose("config", overrides=["hydra/launcher=parallel"], return_hydra_config=True)
        cpu = compose("config", overrides=["hydra/launcher=slurm", "trainer.devices=2"], return_hydra_config=True)
    launcher = OmegaConf.to_container(slurm.hydra.launcher, resolve=True)
    assert launcher["nodes"] == 2 and launcher["tasks_per_node"] == launcher["gpus_per_node"] == 8
    assert (launcher["cpus_per_gpu"], launcher["cpus_per_task"]) == (10, None)
    # a CPU job asks for no GPU at all (sbatch on a CPU partition refuses any gres request)
    on_cpu = OmegaConf.to_container(cpu.hydra.launcher, resolve=True)
    assert (on_cpu["tasks_per_node"], on_cpu["gpus_per_node"], on_cpu["cpus_per_gpu"], on_cpu["cpus_per_task"]) == (
        2, None, None, 1)
    assert "joblib" in parallel.hydra.launcher._target_.lower()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["model.fusion.layers=[5,12]"], "allowed 0..11"),
        (["model=slowfast", "model/variant=B2_S4_Ti8"], "tubelet length 1"),
        (["+model.fusion.layer=[5]"], "model.fusion.layer"),
        (["+data.batchsize=4"], "did you mean data.batch_size?"),
        (["+callbacks.evil._target_=builtins.open", "+callbacks.evil.file=marker"], "is not a lightning Callback"),
        (["+logger.evil._target_=os.system"], "is not a lightning Logger"),
        (["+callbacks.gone._target_=no_such_package.Callback"], "cannot be imported"),
        (["+optim.learning_rate=0.01"], "optim.learning_rate; allowed: betas"),
        (["+trainer.max_epoch=3"], "did you mean trainer.max_epochs?"),
        (["optim.name=lamb"], "sgd, adamw"),
        (["logger.wandb.mode=cloud"], "offline, online, disabled"),
        (["task=eval", "model=ensemble"], "ckpt_paths"),
        (["task=eval", "ckpt_paths=[]"], "ckpt_paths"),
        (["model=mtv_single_view", "model/variant=B2_S4_Ti8"], "model/variant=B2"),
        (["model.init.vit_checkpoints={B: /no/vit_b.npz}"], "/no/vit_b.npz"),
        (["trainer.num_nodes=2", "trainer.strategy=ddp"], "hydra/launcher=slurm"),
        (["dataset=video_folder", "dataset.root=/videos", "+dataset.train_dirs=clips"],
         "did you mean dataset.train_dir?"),
        (["+dataset.num_vids=8"], "dataset.num_vids; allowed: cache_dir"),  # the synthetic format's keys
    ],
)
def test_bad_combinations_fail_at_start_up(overrides: list[str], message: str) -> None:
    cfg = compose_job("debug=smoke", *overrides)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace(".", r"\.")):
        check_config(cfg)


@pytest.mark.parametrize("name", sorted(p.stem for p in (REPO / "conf/dataset").glob("*.yaml")))
def test_every_dataset_file_starts_from_its_formats_schema(name: str) -> None:
    """conf/dataset/<name>.yaml: typed by the schema of its format, so a key it does not read is refused."""
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=[f"dataset={name}"])
        assert OmegaConf.get_type(cfg.dataset) is DATASET_SCHEMAS[cfg.dataset.format]
        with pytest.raises(ConfigCompositionException, match="rooot"):
            compose("config", overrides=[f"dataset={name}", "dataset.rooot=/videos"])
    with pytest.raises(ConfigCompositionException, match="num_classes"):
        compose_job(f"dataset={name}", "dataset.num_classes=many")


def test_missing_dataset_root_is_named() -> None:
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=["dataset=kinetics400"])
    with pytest.raises(ConfigError, match="dataset.root"):
        check_required(cfg)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("model/variant=B3",), "Available options in 'model/variant'"),
        (("model.fusion.layers=[30]",), "allowed 0..11"),
        (("dataset=kinetics400",), "dataset.root"),
        (("dataset=kinetics400", "dataset.root=/no/such/dir"), "does not exist"),
    ],
)
def test_run_py_prints_a_short_error_without_starting(args: tuple[str, ...], expected: str, env: dict,
                                                      tmp_path: Path) -> None:
    proc = run_py(*args, f"hydra.run.dir={tmp_path}", env=env, timeout=120)
    assert proc.returncode != 0
    assert expected in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "checkpoints").exists()
