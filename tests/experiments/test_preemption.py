"""Runs that are killed, signalled or resumed, end to end through run.py (issue 11 "Why", one test each)."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from helpers import REPO, results, run_py, table_py

sys.path.insert(0, str(Path(__file__).parents[1] / "data"))
from videos import write_empty, write_random_bytes, write_video  # noqa: E402

SMOKE = ("debug=smoke", "logger=csv", "trainer.max_epochs=2", "trainer.limit_train_batches=6")
HELPERS = str(Path(__file__).parent)


@pytest.fixture()
def helper_env(env: dict) -> dict:
    """run.py can instantiate the test callbacks of helpers.py."""
    return {**env, "PYTHONPATH": os.pathsep.join(p for p in (HELPERS, env.get("PYTHONPATH")) if p)}


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "checkpoints/last.ckpt", map_location="cpu", weights_only=True)["state_dict"]


def _epoch_losses(run_dir: Path) -> list[float]:
    with (run_dir / "metrics.csv").open() as handle:
        return [float(row["train/loss_epoch"]) for row in csv.DictReader(handle) if row.get("train/loss_epoch")]


def assert_same_run(a: Path, b: Path) -> None:
    """Same final weights, val/test metrics and epoch-averaged training loss."""
    ra, rb = results(a), results(b)
    for key in ("test/top1", "test/clip_top1", "val/top1", "train/loss_epoch"):
        assert ra["metrics"][key] == pytest.approx(rb["metrics"][key], abs=1e-6), key
    assert _epoch_losses(a) == pytest.approx(_epoch_losses(b), abs=1e-6)
    wa, wb = _weights(a), _weights(b)
    for name in wa:
        torch.testing.assert_close(wa[name], wb[name], rtol=1e-5, atol=1e-6, msg=name)


@pytest.mark.slow
def test_sigterm_saves_marks_preempted_sweep_goes_on_and_resume_matches(helper_env: dict, tmp_path: Path) -> None:
    """Job 0 gets SIGTERM after step 3 (mid-epoch), job 1 never: job 0 saves last.ckpt, ends `preempted`
    with a non-zero exit, the sweep still runs job 1, the table lists job 0 as preempted; resuming the sweep
    finishes job 0 with job 1's weights and metrics (the same config otherwise), epoch averages included."""
    sweep = tmp_path / "sweep"
    proc = run_py("-m", *SMOKE, "+callbacks.stop._target_=helpers.SignalAt", "+callbacks.stop.step=3,1000",
                  f"hydra.sweep.dir={sweep}", env=helper_env)
    assert proc.returncode != 0
    stopped, straight = results(sweep / "0"), results(sweep / "1")
    assert stopped["status"] == "preempted" and "SIGTERM" in stopped["error"]
    assert straight["status"] == "completed"
    assert torch.load(sweep / "0/checkpoints/last.ckpt", weights_only=True)["global_step"] == 4
    table = table_py(sweep)
    assert table.returncode == 0 and "preempted" in table.stdout
    resumed = run_py("-m", f"resume={sweep}", env=helper_env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert results(sweep / "0")["status"] == "completed"
    assert results(sweep / "0")["resumed_from"].endswith("last.ckpt")
    assert_same_run(sweep / "0", sweep / "1")


@pytest.mark.slow
def test_default_checkpoints_and_a_corrupt_last_ckpt_resume_to_the_same_result(helper_env: dict,
                                                                                tmp_path: Path) -> None:
    """With the default callbacks a run killed (SIGKILL) in its second epoch resumes from the first epoch's
    last.ckpt; with last.ckpt cut short, a resume names it and starts from last-previous.ckpt."""
    kill = "+callbacks.kill._target_=helpers.KillAt"
    straight, default, corrupt = tmp_path / "straight", tmp_path / "default", tmp_path / "corrupt"
    assert run_py(*SMOKE, f"hydra.run.dir={straight}", env=helper_env).returncode == 0
    crashed = run_py(*SMOKE, kill, f"hydra.run.dir={default}", env={**helper_env, "MTV_TEST_KILL_AT_STEP": "8"})
    assert crashed.returncode != 0
    assert torch.load(default / "checkpoints/last.ckpt", weights_only=True)["epoch"] == 0  # epoch 0's end
    crashed = run_py(*SMOKE, kill, "callbacks.checkpoint.every_n_train_steps=2", f"hydra.run.dir={corrupt}",
                     env={**helper_env, "MTV_TEST_KILL_AT_STEP": "5"})
    assert crashed.returncode != 0
    last = corrupt / "checkpoints/last.ckpt"
    last.write_bytes(last.read_bytes()[:1000])
    for run_dir in (default, corrupt):
        resumed = run_py(f"resume={run_dir}", env=helper_env)
        assert resumed.returncode == 0, resumed.stderr[-3000:]
        assert_same_run(straight, run_dir)
    assert f"{last} is corrupt" in resumed.stdout + resumed.stderr
    assert results(corrupt)["resumed_from"].endswith("last-previous.ckpt")


@pytest.mark.slow
def test_unwritable_checkpoint_directory_fails_the_job_with_path_and_os_error(env: dict, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "checkpoints").symlink_to("/sys")  # not writable, not even by root
    proc = run_py("debug=smoke", "logger=csv", f"hydra.run.dir={run_dir}", env=env)
    assert proc.returncode != 0
    record = results(run_dir)
    assert record["status"] == "failed"
    assert f"cannot write checkpoints to {run_dir / 'checkpoints'}: Permission denied" in record["error"]


def _children(pid: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


@pytest.mark.slow
def test_ddp_workers_die_with_their_job_and_resume_waits_for_them(helper_env: dict, tmp_path: Path) -> None:
    """SIGKILL of a 2-process DDP job: its workers stop too (they used to train on as orphans); while a
    worker of the run lives, a resume of its directory refuses to start."""
    run_dir = tmp_path / "run"
    job = subprocess.Popen([sys.executable, "run.py", *SMOKE, "trainer.devices=2", "trainer.strategy=ddp",
                            "+callbacks.slow._target_=helpers.SlowSteps", f"hydra.run.dir={run_dir}"],
                           cwd=REPO, env={**helper_env, "MTV_TEST_STEP_SLEEP": "1"}, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 240
        while not (run_dir / "metrics.csv").exists() or "train/loss_step" not in (run_dir / "metrics.csv").read_text():
            assert job.poll() is None and time.time() < deadline, "the DDP job did not start training"
            time.sleep(0.5)
        workers = _children(job.pid)
        assert len(workers) == 2
        refused = run_py(f"resume={run_dir}", env=helper_env, timeout=120)
        assert refused.returncode == 2 and "still in use by processes of an earlier attempt" in refused.stderr
        job.send_signal(signal.SIGKILL)
        job.wait()
        deadline = time.time() + 60
        while any(_alive(w) for w in workers) and time.time() < deadline:
            time.sleep(0.5)
        assert not any(_alive(w) for w in workers), "DDP workers outlived their job"
    finally:
        for pid in [job.pid, *[w for w in locals().get("workers", []) if _alive(w)]]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.mark.slow
def test_resume_of_a_completed_run_with_more_epochs_continues(env: dict, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    assert run_py("debug=smoke", "logger=csv", f"hydra.run.dir={run_dir}", env=env).returncode == 0
    assert results(run_dir)["status"] == "completed"
    more = run_py(f"resume={run_dir}", "trainer.max_epochs=2", env=env)
    assert more.returncode == 0, more.stderr[-3000:]
    assert "nothing to do" not in more.stdout
    record = results(run_dir)
    assert record["status"] == "completed" and record["resumed_from"].endswith("last.ckpt")
    assert torch.load(run_dir / "checkpoints/last.ckpt", weights_only=True)["epoch"] == 1  # the second epoch ran
    again = run_py(f"resume={run_dir}", "trainer.max_epochs=2", env=env)  # now the same config: skipped
    assert again.returncode == 0 and "nothing to do" in again.stdout


def _epoch_column(run_dir: Path, key: str) -> list[float]:
    with (run_dir / "metrics.csv").open() as handle:
        return [float(row[key]) for row in csv.DictReader(handle) if row.get(key)]


@pytest.mark.slow
def test_unreadable_training_videos_are_counted_per_epoch_across_a_mid_epoch_resume(
        helper_env: dict, tmp_path: Path) -> None:
    """Three broken files among 15 training videos: every epoch counts each of them (and the broken ones
    drawn as replacements), also the epoch that a SIGTERM cut in two and a resume finished."""
    root = tmp_path / "videos"
    for split, count in (("train", 6), ("val", 1)):
        for label, name in enumerate(("a", "b")):
            for n in range(count):
                write_video(root / split / name / f"{n}.mp4", num_frames=20, height=40, width=48, seed=10 * label + n)
    write_random_bytes(root / "train/a/broken.mp4")
    write_random_bytes(root / "train/b/broken.mp4", size=5000)
    write_empty(root / "train/b/empty.mp4")
    folder = ("debug=smoke", "dataset=video_folder", f"dataset.root={root}", "logger=csv", "trainer.max_epochs=2",
              "trainer.limit_train_batches=1.0", "data.batch_size=2", "data.num_workers=0")
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    done = run_py(*folder, f"hydra.run.dir={straight}", env=helper_env)
    assert done.returncode == 0, done.stderr[-3000:]
    counts = _epoch_column(straight, "train/unreadable_replaced")
    assert len(counts) == 2 and min(counts) >= 3, counts  # each epoch meets every broken file
    signalled = run_py(*folder, "+callbacks.stop._target_=helpers.SignalAt", "+callbacks.stop.step=12",
                       f"hydra.run.dir={stopped}", env=helper_env)
    assert signalled.returncode != 0 and results(stopped)["status"] == "preempted"
    resumed = run_py(f"resume={stopped}", env=helper_env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert _epoch_column(stopped, "train/unreadable_replaced") == counts
