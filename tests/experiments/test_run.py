"""End-to-end runs of run.py on CPU at smoke size: real Hydra, Lightning, gloo DDP and offline W&B."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
import yaml
from helpers import results, run_py, table_py, wandb_content

from experiments.ablations import TABLES

SMOKE = ("debug=smoke",)


@pytest.fixture(scope="module")
def smoke_run(env: dict, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """One smoke-size training run (default model, W&B offline), shared by the tests that read it."""
    run_dir = tmp_path_factory.mktemp("smoke") / "run"
    proc = run_py(*SMOKE, f"hydra.run.dir={run_dir}", env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return run_dir, proc.stdout


def test_train_writes_run_directory_with_wandb_and_csv(smoke_run: tuple[Path, str]) -> None:
    run_dir, stdout = smoke_run
    record = results(run_dir)
    assert record["status"] == "completed"
    assert 0.0 <= record["metrics"]["test/top1"] <= 1.0
    assert record["params"] > 0 and record["gmacs_per_view"] > 0
    assert record["views"] == ["B/2", "S/4", "Ti/8"] and record["fusion"]["layers"] == [5, 11]
    assert record["dataset_sizes"]["train"] > 0 and record["num_classes"] == 4
    for name in ("config.yaml", "metrics.csv", "checkpoints/last.ckpt", "checkpoints/best.ckpt", ".hydra/config.yaml"):
        assert (run_dir / name).exists(), name
    assert "test/top1" in (run_dir / "metrics.csv").read_text().splitlines()[0]
    assert "COMPLETED" in stdout  # the end-of-run summary
    logged = wandb_content(run_dir)
    assert len(logged["ids"]) == 1 and logged["exit"] == {0}
    assert {"train/loss_step", "val/top1", "test/top1"} <= logged["history"]
    assert {"model", "data", "optim", "trainer"} <= logged["config"]
    assert {"params", "gmacs_per_view"} <= logged["summary"]


def test_eval_one_checkpoint_and_an_ensemble_of_checkpoints(smoke_run: tuple[Path, str], env: dict,
                                                              tmp_path: Path) -> None:
    run_dir, _ = smoke_run
    best, last = run_dir / "checkpoints/best.ckpt", run_dir / "checkpoints/last.ckpt"
    single = run_py("task=eval", *SMOKE, f"ckpt_path={best}", "logger=csv", f"hydra.run.dir={tmp_path / 'one'}", env=env)
    assert single.returncode == 0, single.stderr[-3000:]
    one = results(tmp_path / "one")
    assert one["status"] == "completed" and one["params"] == results(run_dir)["params"]
    assert one["metrics"]["test/top1"] == pytest.approx(results(run_dir)["metrics"]["test/top1"], abs=1e-6)
    pair = run_py("task=eval", *SMOKE, f"ckpt_paths=[{best},{last}]", "logger=csv",
                  f"hydra.run.dir={tmp_path / 'two'}", env=env)
    assert pair.returncode == 0, pair.stderr[-3000:]
    two = results(tmp_path / "two")
    assert two["params"] == 2 * one["params"] and two["model"] == "ensemble"  # two members
    assert one["variant"] == "B/2+S/4+Ti/8" and one["fusion"]["layers"] == [5, 11]


def test_eval_a_converted_model_checkpoint(smoke_run: tuple[Path, str], env: dict, tmp_path: Path) -> None:
    """The format released checkpoints are converted to (mtv.interop): same weights, same result."""
    from mtv.interop.checkpoint import save_model_checkpoint
    from mtv.runner.tasks import load_checkpoint_model

    run_dir, _ = smoke_run
    model, trained = load_checkpoint_model(str(run_dir / "checkpoints/best.ckpt"))
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    save_model_checkpoint(tmp_path / "released.ckpt", model, {**saved["model"], "init": {}}, trained["num_classes"],
                          trained["num_frames"], tuple(trained["crop_size"]), source="test")
    proc = run_py("task=eval", *SMOKE, f"ckpt_path={tmp_path / 'released.ckpt'}", "logger=csv",
                  f"hydra.run.dir={tmp_path / 'eval'}", env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert results(tmp_path / "eval")["metrics"]["test/top1"] == pytest.approx(
        results(run_dir)["metrics"]["test/top1"], abs=1e-6)


@pytest.mark.slow
def test_ddp_jobs_inside_a_multirun_sweep(env: dict, tmp_path: Path) -> None:
    """Table 1e at smoke size, every job on 2 gloo processes, then the table from the run directories."""
    sweep = tmp_path / "sweep"
    proc = run_py("-m", "experiment=table1e_num_views", *SMOKE, "trainer.devices=2", "trainer.strategy=ddp",
                  f"hydra.sweep.dir={sweep}", env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir())
    assert [results(j)["status"] for j in jobs] == ["completed"] * 3
    assert {results(j)["ablation"]["row"] for j in jobs} == {"B4", "B4_Ti8", "B4_S8_Ti16"}
    assert all(results(j)["devices"]["devices"] == 2 for j in jobs)
    assert all(len(wandb_content(j)["ids"]) == 1 for j in jobs)  # rank 0 only: one W&B run per job
    table = table_py(sweep)
    assert table.returncode == 0, table.stderr
    assert "| B/4 |" in table.stdout and "78.3" in table.stdout and (sweep / "top1_vs_gmacs.png").stat().st_size > 0


@pytest.mark.slow
@pytest.mark.parametrize("table", ["table1c_fusion", "table1d_slowfast", "vivit_models", "compare_pyramids_views"])
def test_sweeps_finish_every_row_at_smoke_size(table: str, env: dict, tmp_path: Path) -> None:
    """The sweeps with the most distinct rows (ensemble, late / MLP / bottleneck / CVA fusion, SlowFast,
    ViViT's four models, MTV against MViT, ViViT and MoA); every row of every table is composed and
    validated in test_configs.py. A sweep names its directory when it starts and ends."""
    sweep = tmp_path / table
    proc = run_py("-m", f"experiment={table}", *SMOKE, "logger=csv", f"hydra.sweep.dir={sweep}", env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"sweep: runs go to {sweep}" in proc.stdout and f"sweep done: {sweep}" in proc.stdout
    rows = {results(j)["ablation"]["row"]: results(j)["status"] for j in sweep.iterdir() if j.is_dir()}
    assert rows == {row.name: "completed" for row in TABLES[table].rows}
    assert table_py(sweep).returncode == 0 and (sweep / "table.csv").exists()


@pytest.mark.slow
def test_failing_job_leaves_other_jobs_and_table_intact(env: dict, tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    # data.batch_size=0 passes config checks and fails inside training (DataLoader)
    proc = run_py("-m", *SMOKE, "data.batch_size=4,0", f"hydra.sweep.dir={sweep}", env=env)
    assert proc.returncode != 0  # Hydra reports the failure after running every job
    good, bad = results(sweep / "0"), results(sweep / "1")
    assert good["status"] == "completed" and bad["status"] == "failed"
    assert "batch_size" in bad["error"]
    assert wandb_content(sweep / "1")["exit"] == {1}  # W&B run finished, marked failed
    table = table_py(sweep)
    assert table.returncode == 0 and "completed" in table.stdout and "failed" in table.stdout


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_result(env: dict, tmp_path: Path) -> None:
    """Killed (SIGKILL) mid-epoch after step 5, resumed from last.ckpt (saved every 2 steps): the same
    final weights and metrics as a run that was never interrupted."""
    common = (*SMOKE, "trainer.max_epochs=2", "trainer.limit_train_batches=6",
              "callbacks.checkpoint.every_n_train_steps=2", "+callbacks.kill._target_=helpers.KillAt")
    env = {**env, "PYTHONPATH": str(Path(__file__).parent)}
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    assert run_py(*common, f"hydra.run.dir={straight}", env=env).returncode == 0
    crashed = run_py(*common, f"hydra.run.dir={killed}", env={**env, "MTV_TEST_KILL_AT_STEP": "5"})
    assert crashed.returncode != 0 and results(killed)["status"] == "running"
    resumed = run_py(f"resume={killed}", env=env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a, b = results(straight), results(killed)
    assert b["status"] == "completed" and b["resumed_from"].endswith("last.ckpt")
    for key in ("test/top1", "test/clip_top1", "val/top1"):
        assert a["metrics"][key] == pytest.approx(b["metrics"][key], abs=1e-6), key
    wa = torch.load(straight / "checkpoints/last.ckpt", weights_only=True)["state_dict"]
    wb = torch.load(killed / "checkpoints/last.ckpt", weights_only=True)["state_dict"]
    for name in wa:
        torch.testing.assert_close(wa[name], wb[name], rtol=1e-5, atol=1e-6, msg=name)
    assert len(wandb_content(killed)["ids"]) == 1  # the resumed job continued the same W&B run
    assert _losses(straight) == pytest.approx(_losses(killed), abs=1e-6)  # one metrics.csv, every step once


def _losses(run_dir: Path) -> list[float]:
    with (run_dir / "metrics.csv").open() as handle:
        rows = [row for row in csv.DictReader(handle) if row.get("train/loss_step")]
    assert [int(row["step"]) for row in rows] == list(range(len(rows)))
    return [float(row["train/loss_step"]) for row in rows]


@pytest.mark.slow
def test_parallel_launcher_runs_jobs_side_by_side(env: dict, tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    proc = run_py("-m", *SMOKE, "hydra/launcher=parallel", "hydra.launcher.n_jobs=2", "seed=1,2",
                  "logger=csv", f"hydra.sweep.dir={sweep}", env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert [results(sweep / j)["status"] for j in ("0", "1")] == ["completed", "completed"]


def test_profile_counts_without_data(env: dict, tmp_path: Path) -> None:
    """Paper-size MTV-B on Kinetics-400 with no dataset on disk: counting reads no data."""
    run_dir = tmp_path / "profile"
    proc = run_py("task=profile", "experiment=k400_mtv_b", "logger=csv", f"hydra.run.dir={run_dir}", env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    profile = (run_dir / "profile.json").read_text()
    assert "gmacs_per_view" in profile
    assert results(run_dir)["params"] > 250e6  # MTV-B is about 300 M parameters
