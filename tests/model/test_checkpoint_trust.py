"""Checkpoint files are data (issue 12 "Code runs when a checkpoint is loaded"): a pickle whose loading
would run a shell command is refused by every reader (eval, fine-tuning, resume, ViT and foreign state
dicts) before it can run, and a trusted old file can be converted into a plain one."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from mtv import ConfigError
from mtv.checkpoints import convert_trusted, main, read_checkpoint, read_state_dict
from mtv.models.mtv.checkpoint_init import init_from_checkpoint
from mtv.models.vit_init import load_vit_checkpoint
from mtv.runner.data import data_position
from mtv.runner.tasks import load_checkpoint_model


class _Payload:
    """Unpickling this calls os.system: what a malicious checkpoint does."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _malicious(tmp_path: Path, name: str) -> tuple[Path, Path]:
    marker = tmp_path / f"{name}.pwned"
    path = tmp_path / name
    torch.save({"state_dict": {"w": torch.zeros(1)}, "hyper_parameters": _Payload(marker)}, path)
    return path, marker


READERS = {
    "eval ckpt_path": lambda p: load_checkpoint_model(str(p)),
    "model.init.checkpoint": lambda p: init_from_checkpoint(torch.nn.Linear(1, 1), p),
    "resume last.ckpt": lambda p: data_position(str(p)),
    "ViT .pth": lambda p: load_vit_checkpoint(p),
    "foreign state dict": lambda p: read_state_dict(p),
}


@pytest.mark.parametrize("reader", READERS)
def test_a_pickle_that_runs_code_is_refused_by_every_reader(tmp_path, reader):
    path, marker = _malicious(tmp_path, "evil.pth")
    with pytest.raises(ConfigError, match=r"evil\.pth.*refused.*python -m mtv\.checkpoints"):
        READERS[reader](path)
    assert not marker.exists()


def test_the_payload_really_runs_when_unpickled(tmp_path):
    """The guard above is meaningful: the same file run through plain unpickling creates the marker."""
    path, marker = _malicious(tmp_path, "evil.ckpt")
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_state_dicts_are_found_inside_training_wrappers(tmp_path):
    weights = {"a.weight": torch.arange(4.0), "a.bias": torch.ones(2)}
    for wrapper in ("state_dict", "model", "module"):
        torch.save({wrapper: weights, "epoch": 3, "args": {"lr": 0.1}}, tmp_path / f"{wrapper}.pth")
        read = read_state_dict(tmp_path / f"{wrapper}.pth")
        assert read.keys() == weights.keys() and torch.equal(read["a.weight"], weights["a.weight"])
    torch.save({"epoch": 3}, tmp_path / "none.pth")
    with pytest.raises(ConfigError, match="init=.*none.pth.*no state dict of tensors"):
        read_state_dict(tmp_path / "none.pth", key="init")
    with pytest.raises(ConfigError, match="ckpt_path='.*missing.ckpt': no such file"):
        read_checkpoint(tmp_path / "missing.ckpt", key="ckpt_path")


def test_a_trusted_old_checkpoint_converts_to_a_plain_one(tmp_path, capsys):
    old = tmp_path / "old.ckpt"
    torch.save({"state_dict": {"w": torch.arange(3.0)}, "hyper_parameters": {"dir": Path("/runs/x"), "lr": 0.1}},
               old)
    with pytest.raises(ConfigError, match="refused"):  # a pathlib object needs unpickling
        read_checkpoint(old)
    main([str(old), str(tmp_path / "plain.ckpt")])
    assert "wrote" in capsys.readouterr().out
    plain = read_checkpoint(tmp_path / "plain.ckpt")
    assert plain["hyper_parameters"] == {"dir": "/runs/x", "lr": 0.1}
    assert torch.equal(plain["state_dict"]["w"], torch.arange(3.0))


def test_converting_refuses_objects_it_cannot_make_plain(tmp_path):
    source = tmp_path / "obj.ckpt"
    torch.save({"state_dict": {}, "optimizer": torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1)}, source)
    with pytest.raises(ConfigError, match=r"obj\.ckpt/optimizer: a torch\.optim\.sgd\.SGD object"):
        convert_trusted(source, tmp_path / "out.ckpt")
    assert not (tmp_path / "out.ckpt").exists()
