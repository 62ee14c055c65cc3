"""Packaging and machine-local configuration: decord2 (not the unmaintained decord 0.6.0, never both:
they install the same `decord` package), and the optional, git-ignored conf/local/ for paths."""
from __future__ import annotations

import importlib.metadata
import shutil
import subprocess
import tomllib
from pathlib import Path

from hydra import compose, initialize_config_dir

REPO = Path(__file__).resolve().parents[2]


def _installed(name: str) -> bool:
    try:
        importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def test_decord_and_decord2_are_not_both_installed():
    assert not (_installed("decord") and _installed("decord2")), (
        "decord and decord2 are both installed and overwrite each other's `decord` package: "
        "pip uninstall -y decord decord2 && pip install decord2")


def test_pyproject_depends_on_decord2_only():
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {d.split(">")[0].split("=")[0].split("<")[0].strip() for d in deps}
    assert "decord2" in names and "decord" not in names


def _compose(conf: Path):
    with initialize_config_dir(str(conf), version_base="1.3"):
        return compose("config")


def test_conf_local_is_optional_git_ignored_and_wins(tmp_path):
    conf = tmp_path / "conf"
    shutil.copytree(REPO / "conf", conf)
    (conf / "local" / "default.yaml").unlink(missing_ok=True)
    assert _compose(conf).paths.data_dir != "/mnt/videos"  # no local file: still composes
    (conf / "local" / "default.yaml").write_text("# @package _global_\npaths:\n  data_dir: /mnt/videos\n")
    assert _compose(conf).paths.data_dir == "/mnt/videos"
    ignored = subprocess.run(["git", "check-ignore", "-q", "conf/local/default.yaml"], cwd=REPO)
    assert ignored.returncode == 0, "conf/local/*.yaml must be git-ignored"
