"""Sweeps through hydra/launcher=slurm on a real one-node SLURM cluster (scripts/local_slurm.sh).

CI (.ci/run) starts the cluster first; elsewhere the fixture starts it when it can (root and apt-get on
Debian) and skips these tests with the reason when it cannot.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from helpers import REPO, results, run_py, table_py
from test_preemption import assert_same_run

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

SCRIPT = REPO / "scripts" / "local_slurm.sh"
TWO_ROWS = ("-m", "experiment=table1b_same_encoder", "debug=smoke", "hydra/launcher=slurm")


def _cluster_up() -> bool:
    if shutil.which("sinfo") is None:
        return False
    state = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=30)
    return state.returncode == 0 and any(s.startswith(("idle", "mixed", "alloc")) for s in state.stdout.split())


@pytest.fixture(scope="module")
def slurm() -> None:
    """A running SLURM cluster with an idle node, or a skip that says why there is none."""
    if _cluster_up():
        return
    if os.geteuid() != 0:
        pytest.skip("no SLURM cluster running and not root: run `sudo scripts/local_slurm.sh` first")
    if shutil.which("sbatch") is None and shutil.which("apt-get") is None:
        pytest.skip("no SLURM cluster, no sbatch and no apt-get to install one (scripts/local_slurm.sh needs Debian)")
    started = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, timeout=900)
    if started.returncode != 0 or not _cluster_up():
        pytest.skip(f"scripts/local_slurm.sh could not start a cluster: {started.stderr.strip()[-500:]}")


def _rows(sweep: Path) -> dict[str, dict]:
    return {results(j)["ablation"]["row"]: results(j) for j in sweep.iterdir() if j.is_dir() and j.name.isdigit()}


def _sbatch_script(sweep: Path) -> str:
    return next(sweep.glob(".submitit/*/*_submission.sh")).read_text()


def test_table1_sweep_on_a_cpu_cluster_then_the_table(slurm: None, env: dict, tmp_path: Path) -> None:
    """No launcher overrides: a CPU job asks for CPUs per task, not GPUs (which sbatch refuses here)."""
    sweep = tmp_path / "sweep"
    proc = run_py(*TWO_ROWS, f"hydra.sweep.dir={sweep}", env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    script = _sbatch_script(sweep)
    assert "--cpus-per-task=1" in script and "gpus" not in script and "gres" not in script
    rows = _rows(sweep)
    assert {row: r["status"] for row, r in rows.items()} == {"B2_B4_B8": "completed", "B2_S4_Ti8": "completed"}
    assert all(r["host"] and r["metrics"]["test/top1"] >= 0 for r in rows.values())
    table = table_py(sweep)
    assert table.returncode == 0, table.stderr
    assert "B/2+B/4+B/8" in table.stdout and "completed" in table.stdout and (sweep / "table.csv").exists()


def test_two_tasks_per_job_run_ddp_over_gloo_through_srun(slurm: None, env: dict, tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    proc = run_py(*TWO_ROWS, "trainer.devices=2", "trainer.strategy=ddp", f"hydra.sweep.dir={sweep}", env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "--ntasks-per-node=2" in _sbatch_script(sweep)
    rows = _rows(sweep)
    assert [r["status"] for r in rows.values()] == ["completed", "completed"]
    assert all(r["devices"]["devices"] == 2 for r in rows.values())
    logs = "".join(p.read_text() for p in sweep.glob(".submitit/*/*_log.*"))
    assert "MEMBER: 2/2" in logs and "distributed_backend=gloo" in logs  # srun started rank 1 too
    assert table_py(sweep).returncode == 0


def _job_id(sweep: Path, timeout_s: float = 120) -> str:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        ids = [p.parent.name for p in sweep.glob(".submitit/*/*_submitted.pkl")]  # <id> or <array id>_<index>
        if ids:
            return ids[0]
        time.sleep(0.5)
    raise AssertionError(f"no SLURM job appeared under {sweep}/.submitit")


def _squeue(*args: str) -> str:
    return subprocess.run(args, capture_output=True, text=True, timeout=60).stdout.strip()


def _release_requeued(job: str, timeout_s: float = 180) -> None:
    """SLURM holds a requeued job back (BeginTime) for a while: once it is pending and the node has
    finished cleaning up its first run (else: "Job credential revoked"), let it start now."""
    deadline = time.time() + timeout_s
    while not (_squeue("squeue", "-h", "-j", job, "-o", "%T") == "PENDING"
               and _squeue("sinfo", "-h", "-o", "%T").startswith("idle")):
        assert time.time() < deadline, f"SLURM job {job} was not requeued: {_squeue('scontrol', 'show', 'job', job)}"
        time.sleep(0.5)
    subprocess.run(["scontrol", "update", f"jobid={job}", "StartTime=now"], check=True, timeout=60)


STOPS = {
    "requeue": lambda job: ["scontrol", "requeue", job],  # preemption / by hand: SIGTERM, SLURM requeues
    "timeout": lambda job: ["scancel", "--signal=USR2", job],  # what submitit gets before the time limit
}


@pytest.mark.parametrize("stop", sorted(STOPS))
def test_requeued_job_continues_from_its_own_last_ckpt(stop: str, slurm: None, env: dict, tmp_path: Path) -> None:
    """`scontrol requeue` (or submitit's time-out signal, after which submitit requeues) mid-training:
    last.ckpt, the job runs again in its directory, resumes and ends with the weights and metrics of a
    run that was never interrupted."""
    common = ("debug=smoke", "logger=csv", "trainer.max_epochs=2", "trainer.limit_train_batches=6",
              "callbacks.checkpoint.every_n_train_steps=2", "+callbacks.slow._target_=helpers.SlowSteps")
    helper_env = {**env, "PYTHONPATH": os.pathsep.join(p for p in (str(Path(__file__).parent),
                                                                    env.get("PYTHONPATH")) if p)}
    straight = tmp_path / "straight"
    assert run_py(*common, f"hydra.run.dir={straight}", env=helper_env).returncode == 0
    sweep = tmp_path / "sweep"
    sweep_proc = subprocess.Popen([sys.executable, "run.py", "-m", *common, "hydra/launcher=slurm",
                                   f"hydra.sweep.dir={sweep}"], cwd=REPO, text=True, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, env={**helper_env, "MTV_TEST_STEP_SLEEP": "1"})
    job = None
    try:
        job = _job_id(sweep)
        last = sweep / "0/checkpoints/last.ckpt"
        deadline = time.time() + 240
        while not last.exists():
            assert sweep_proc.poll() is None and time.time() < deadline, "the job never saved last.ckpt"
            time.sleep(0.2)
        subprocess.run(STOPS[stop](job), check=True, timeout=60)
        deadline = time.time() + 120
        while results(sweep / "0")["status"] != "preempted":  # it saved and stopped
            assert time.time() < deadline, results(sweep / "0")
            time.sleep(0.2)
        stopped_at = torch.load(last, weights_only=True)["global_step"]
        _release_requeued(job)
        output, _ = sweep_proc.communicate(timeout=300)
    finally:
        if sweep_proc.poll() is None:
            sweep_proc.kill()
            if job:
                subprocess.run(["scancel", job], timeout=60)
    assert sweep_proc.returncode == 0, output[-3000:]
    record = results(sweep / "0")
    assert record["status"] == "completed" and record["resumed_from"] == str(last)
    assert 0 < stopped_at < 12  # it really stopped mid-training
    assert_same_run(straight, sweep / "0")
