"""What a user sees at the terminal and on the dashboard: the config tree, the model's real counts, one
learning rate per parameter group, typo'd keys refused with the key meant, and an Optuna search."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import yaml
from helpers import run_py

from mtv import ConfigError
from mtv.runner.overrides import check_override_keys

SMOKE = ("debug=smoke", "logger=csv")


def test_a_run_prints_its_config_and_counts_and_logs_every_learning_rate(env: dict, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    proc = run_py(*SMOKE, "optim.layer_decay=0.75", f"hydra.run.dir={run_dir}", env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout + proc.stderr
    assert f"config (saved to {run_dir / 'config.yaml'})" in out
    assert "| **total** | **" in out and "GMACs per clip" in out  # the family's counts, not "Total FLOPs: 0"
    assert "Total FLOPs" not in out and "exists and is not empty" not in out
    assert "`weights_only` was not set" not in out  # Lightning's line for every last.ckpt save
    with (run_dir / "metrics.csv").open() as handle:
        columns = set(next(csv.reader(handle)))
    lrs = sorted(c for c in columns if c.startswith("lr-"))
    assert "train/lr" not in columns
    assert len(lrs) > 2 and any("/layer0" in c for c in lrs) and any("no_decay" in c for c in lrs), lrs
    with (run_dir / "metrics.csv").open() as handle:
        last = [row for row in csv.DictReader(handle) if row[lrs[0]]][-1]  # after warm-up's first step (lr 0)
    assert len({round(float(last[c]), 12) for c in lrs if last[c]}) > 1  # layer decay: the groups differ


def test_profile_summary_says_it_ran_on_nothing(env: dict, tmp_path: Path) -> None:
    proc = run_py("task=profile", "experiment=k400_mtv_b", "logger=csv", f"hydra.run.dir={tmp_path}", env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "counted on the meta device" in proc.stdout and "'devices': 8" not in proc.stdout


@pytest.mark.parametrize(("args", "message"), [
    (["fusion.layers=[5,11]"], "did you mean model.fusion.layers=[5,11]?"),
    (["+fusion.layers=[5,11]"], "did you mean model.fusion.layers=[5,11]?"),
    (["+global_encoder.num_layers=2"], "did you mean model.global_encoder.num_layers=2?"),
])
def test_a_key_at_the_wrong_level_names_the_key_meant(args: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace(".", r"\.").replace("?", r"\?")):
        check_override_keys(args)
    check_override_keys(["model.fusion.layers=[5,11]", "model/variant=B4", "+row/table1e_num_views=B4", "-m"])


def test_optuna_search_maximises_the_jobs_test_top1(env: dict, tmp_path: Path) -> None:
    sweep = tmp_path / "search"
    proc = run_py("hparams_search=mtv_optuna", *SMOKE, "hydra.sweeper.n_trials=2", f"hydra.sweep.dir={sweep}", env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert set(best["best_params"]) == {"optim.lr", "optim.weight_decay", "model.stochastic_depth"}
    tops = [yaml.safe_load((d / "results.json").read_text())["metrics"]["test/top1"] for d in sweep.iterdir()
            if (d / "results.json").exists()]
    assert len(tops) == 2 and best["best_value"] == max(tops)
