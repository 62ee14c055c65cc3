"""Starting MoA from state dicts in the authors' layout, written to files here: fine-tuning with another head
or input size, a video model from an image checkpoint, and checkpoints that do not fit."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from moa_helpers import authors_kwargs, authors_state  # noqa: E402

from mtv import ConfigError  # noqa: E402
from mtv.interop.moa import authors_config, model_from_authors  # noqa: E402
from mtv.models.moa.checkpoint import init_from_checkpoint  # noqa: E402
from mtv.models.moa.config import MoAConfig  # noqa: E402
from mtv.models.moa.model import MoATransformer  # noqa: E402
from mtv.models.registry import ModelInputs, get_family  # noqa: E402

torch.set_num_threads(1)

# the fixture's geometry shrunk: 112 px, patch 4, window 14 -> maps 28 (2x2 MOA), 14 (1x1 MOA), 7 (clipped)
KWARGS = authors_kwargs(img_size=112, patch_size=4, embed_dim=32, depths=[1, 1, 1], num_heads=[1, 2, 4],
                        window_size=14, num_classes=5)


def _cfg(checkpoint: str | None = None) -> MoAConfig:
    cfg, _ = authors_config(KWARGS)
    cfg.init.checkpoint = checkpoint
    return cfg


@pytest.fixture(scope="module")
def authors(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, torch.Tensor]]:
    """An authors'-layout state dict (index buffers included) saved as their training script does: under 'model'."""
    cfg, inputs = authors_config(KWARGS)
    state = authors_state(MoATransformer(cfg, inputs.num_classes, inputs.image_size), seed=11)
    path = tmp_path_factory.mktemp("moa") / "ckpt_epoch_299.pth"
    torch.save({"model": state, "epoch": 299, "max_accuracy": 0.5}, path)
    return path, state


def _build(cfg: MoAConfig, classes: int = 5, frames: int = 1, size: int = 112) -> torch.nn.Module:
    return get_family("moa").build(cfg, ModelInputs(classes, frames, (size, size))).eval()


def _images(size: int = 112, batch: int = 2) -> torch.Tensor:
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(2))


def test_init_checkpoint_gives_the_authors_model(authors) -> None:
    path, state = authors
    with torch.no_grad():
        torch.testing.assert_close(_build(_cfg(str(path)))(_images()), model_from_authors(KWARGS, state)(_images()),
                                   atol=0, rtol=0)


def test_other_class_count_replaces_the_head(authors) -> None:
    path, state = authors
    model = _build(_cfg(str(path)), classes=7)
    assert model.head.weight.shape == (7, 128)
    weights = model.state_dict()
    for key, value in state.items():
        if key.startswith("head.") or key.endswith("relative_position_index"):
            continue
        torch.testing.assert_close(weights[key], value, atol=0, rtol=0, msg=key)


def test_other_input_size_resizes_relative_tables(authors) -> None:
    """At 224 the MOA grids grow (2x2 -> 4x4, 1x1 -> 2x2) and the last window is no longer clipped (7 -> 14)."""
    path, state = authors
    ramp = torch.arange(-6, 7, dtype=torch.float32)  # row offset dh of the 13x13 table of window 7
    table = ramp[:, None, None].expand(13, 13, 4).reshape(169, 4)
    source = dict(state, **{"layers.2.blocks.0.attn.relative_position_bias_table": table})
    model = _build(_cfg(), size=224)
    init_from_checkpoint(model, source)
    weights = model.state_dict()
    assert weights["layers.0.glb_attn.relative_position_bias_table"].shape == (49, 1)
    assert weights["layers.2.blocks.0.attn.relative_position_bias_table"].shape == (729, 4)
    # a table linear in the row offset stays linear: offsets -6..6 stretched onto -13..13
    resized = weights["layers.2.blocks.0.attn.relative_position_bias_table"].reshape(27, 27, 4)
    expected = torch.arange(-13, 14, dtype=torch.float32) * 6 / 13
    torch.testing.assert_close(resized[:, 5, 2], expected, atol=1e-5, rtol=0)
    # a 1x1 MOA table becomes constant
    one = state["layers.1.glb_attn.relative_position_bias_table"]
    torch.testing.assert_close(weights["layers.1.glb_attn.relative_position_bias_table"], one.expand(9, 2),
                               atol=1e-6, rtol=0)
    q = "layers.0.glb_attn.q.weight"
    torch.testing.assert_close(weights[q], state[q], atol=0, rtol=0)
    with torch.no_grad():
        assert torch.isfinite(model(_images(224, 1))).all()


def test_video_model_from_image_checkpoint(authors) -> None:
    path, state = authors
    video_model = _build(_cfg(str(path)), frames=8)
    images = _images()
    with torch.no_grad():
        still = images[:, :, None].expand(-1, -1, 8, -1, -1)  # a video of one repeated frame
        torch.testing.assert_close(video_model(still), model_from_authors(KWARGS, state)(images), atol=1e-5, rtol=0)


def test_lightning_checkpoint_of_this_project_loads(authors, tmp_path: Path) -> None:
    _, state = authors
    path = tmp_path / "last.ckpt"
    torch.save({"state_dict": {f"model.{k}": v for k, v in state.items()}, "epoch": 3}, path)
    with torch.no_grad():
        torch.testing.assert_close(_build(_cfg(str(path)))(_images()), model_from_authors(KWARGS, state)(_images()),
                                   atol=0, rtol=0)


def test_missing_key_is_named(authors, tmp_path: Path) -> None:
    _, state = authors
    path = tmp_path / "partial.pth"
    torch.save({k: v for k, v in state.items() if k != "layers.0.post_conv.weight"}, path)
    with pytest.raises(ConfigError, match=r"missing layers\.0\.post_conv\.weight \(32, 32, 3, 3\)"):
        _build(_cfg(str(path)))


def test_misshapen_tensor_is_named(authors, tmp_path: Path) -> None:
    _, state = authors
    path = tmp_path / "wide.pth"
    torch.save(dict(state, **{"layers.1.glb_attn.kv.weight": torch.zeros(128, 100)}), path)
    with pytest.raises(ConfigError, match=r"layers\.1\.glb_attn\.kv\.weight has shape \(128, 100\), the model needs "
                                          r"\(128, 512\)"):  # C // 32 * (14 + 2) ** 2 inputs
        _build(_cfg(str(path)))


def test_checkpoint_of_other_depths(authors) -> None:
    path, _ = authors
    cfg = _cfg(str(path))
    cfg.depths = [1, 1, 2]
    with pytest.raises(ConfigError, match=r"first: missing layers\.2\.blocks\.1\.norm1\.weight \(128,\)"):
        _build(cfg)


def test_pickled_objects_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "with_config.pth"
    torch.save({"model": {}, "config": Path("not/a/tensor")}, path)  # like the authors' yacs config
    with pytest.raises(ConfigError, match="refused, this checkpoint needs arbitrary unpickling"):
        _build(_cfg(str(path)))
    with pytest.raises(ConfigError, match="no such file"):
        _build(_cfg(str(tmp_path / "absent.pth")))


def test_authors_state_must_fit_exactly(authors) -> None:
    _, state = authors
    with pytest.raises(ConfigError, match=r"head\.weight: shape \(5, 128\)"):
        model_from_authors({**KWARGS, "num_classes": 6}, state)
    with pytest.raises(ConfigError, match="relative_position_index differs"):
        model_from_authors(KWARGS, dict(state, **{"layers.0.blocks.0.attn.relative_position_index":
                                                  torch.zeros(196, 196, dtype=torch.long)}))
    with pytest.raises(ConfigError, match="shift_size not understood"):
        model_from_authors({**KWARGS, "shift_size": 7}, state)
