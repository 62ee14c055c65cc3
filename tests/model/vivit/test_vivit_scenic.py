"""ViViT from scenic: the fixture's logits (scenic ran them), an independent float64 NumPy reference on the
cases the fixture does not cover (all four attention types, both classifiers, both model-3 orders, a
non-square input), Flax npz / msgpack forms, checkpoint errors and the converter's round trip."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]  # the test-only reference; the msgpack writer of the MTV tests
import vivit_reference_impl as reference  # noqa: E402
from test_scenic_interop import _nested as nested  # noqa: E402
from test_scenic_interop import _train_state, write_flax_msgpack  # noqa: E402

from mtv import ConfigError  # noqa: E402
from mtv.interop.checkpoint import load_model_checkpoint  # noqa: E402
from mtv.interop.convert import main as convert_main  # noqa: E402
from mtv.interop.scenic import model_from_scenic  # noqa: E402
from mtv.models.registry import ModelInputs, get_family  # noqa: E402
from mtv.models.vivit.config import config_from_dict  # noqa: E402
from mtv.models.vivit.model import ViViT  # noqa: E402

torch.set_num_threads(1)
ATOL = 2e-5  # vivit_spec.md §4: float32 ports agree to ~1e-6; scenic jit vs eager differ by 4.8e-7
FIXTURE = HERE.parents[2].parent / "shared/reference/fixtures/vivit"
CASE = "tiny_model1_spacetime"
needs_fixture = pytest.mark.skipif(not (FIXTURE / f"{CASE}_params.npz").is_file(), reason="ViViT fixture not found")


@pytest.fixture(scope="module")
def fixture() -> dict[str, Any]:
    meta = json.loads((FIXTURE / f"{CASE}_config.json").read_text())
    with np.load(FIXTURE / f"{CASE}_params.npz") as params, np.load(FIXTURE / f"{CASE}_io.npz") as io:
        return {"meta": meta, "config": meta["config"], "params": dict(params), "io": dict(io)}


def logits(model: torch.nn.Module, video: np.ndarray) -> np.ndarray:
    """scenic's (B, T, H, W, 3) video through our (B, 3, T, H, W) model."""
    with torch.no_grad():
        return model(torch.from_numpy(np.ascontiguousarray(video, np.float32)).permute(0, 4, 1, 2, 3)).numpy()


def assert_fixture_logits(model: torch.nn.Module, io: dict[str, np.ndarray]) -> None:
    for inputs, expected in (("input", "logits"), ("input_small", "logits_small")):
        np.testing.assert_allclose(logits(model, io[inputs]), io[expected], atol=ATOL, rtol=0, err_msg=inputs)


# ---- the fixture --------------------------------------------------------------------------------------

@needs_fixture
@pytest.mark.parametrize("form", ["npz", "flat mapping", "nested mapping", "scenic msgpack"])
def test_fixture_logits(fixture, form):
    params = {"npz": FIXTURE / f"{CASE}_params.npz", "flat mapping": fixture["params"],
              "nested mapping": nested(fixture["params"]),
              "scenic msgpack": FIXTURE / f"{CASE}_checkpoint.msgpack"}[form]
    model = model_from_scenic(fixture["config"], params)
    assert isinstance(model, ViViT) and not model.training
    assert sum(p.numel() for p in model.parameters()) == fixture["meta"]["num_params"]
    assert_fixture_logits(model, fixture["io"])


@needs_fixture
@pytest.mark.parametrize("layout", ["current", "2022"])
def test_fixture_logits_from_written_msgpack_layouts(fixture, tmp_path, layout):
    """scenic's current TrainState (`params`) and the 2022 flax.optim one (`optimizer/target`)."""
    write_flax_msgpack(tmp_path / "checkpoint_7", _train_state(layout, fixture["params"]))
    assert_fixture_logits(model_from_scenic(fixture["config"], tmp_path), fixture["io"])


@needs_fixture
def test_reference_reproduces_scenic(fixture):
    """The NumPy reference is itself held to scenic's logits and parameter list."""
    config, params, io = fixture["config"], fixture["params"], fixture["io"]
    for inputs, expected in (("input", "logits"), ("input_small", "logits_small")):
        np.testing.assert_allclose(reference.forward(config, params, io[inputs]), io[expected], atol=2e-6, rtol=0)
    shapes = reference.param_shapes(config, 5, (32, 32))
    assert shapes == {k: tuple(v) for k, v in fixture["meta"]["param_shapes"].items()}


# ---- cases scenic's fixture does not cover, against the reference ---------------------------------------

CASES = [  # (id, scenic config)
    ("model1_token", reference.scenic_config("spacetime", "token")),
    ("model1_gap", reference.scenic_config("spacetime", "gap")),
    ("model2_token", reference.scenic_config("factorized_encoder", "token",
                                             temporal={"num_heads": 4, "mlp_dim": 8, "num_layers": 2})),
    ("model2_gap", reference.scenic_config("factorized_encoder", "gap")),
    ("model3_space_time", reference.scenic_config("factorized_self_attention_block", "gap", order="space_time")),
    ("model3_time_space", reference.scenic_config("factorized_self_attention_block", "gap", order="time_space")),
    ("model4_2heads", reference.scenic_config("factorized_dot_product_attention", "gap")),
    ("model4_4heads", reference.scenic_config("factorized_dot_product_attention", "gap", heads=4)),
    ("model1_non_square", reference.scenic_config("spacetime", "token", crop=[16, 24], patch=(4, 8, 2))),
    ("model2_non_square", reference.scenic_config("factorized_encoder", "token", crop=[24, 16])),
    ("model3_non_square", reference.scenic_config("factorized_self_attention_block", "gap", crop=[16, 24],
                                                  order="time_space", frames=6)),
    ("model4_non_square", reference.scenic_config("factorized_dot_product_attention", "gap", crop=[24, 16],
                                                  heads=4)),
]


def _case(config: dict[str, Any], seed: int = 1) -> tuple[dict[str, np.ndarray], np.ndarray]:
    crop = config["dataset_configs"].get("crop_size", [16, 16])
    image = (crop, crop) if isinstance(crop, int) else tuple(crop)
    params = reference.random_params(reference.param_shapes(config, 3, image), seed)
    video = np.random.default_rng(seed).normal(size=(2, config["dataset_configs"]["num_frames"], *image, 3))
    return params, video.astype(np.float32)


@pytest.mark.parametrize("config", [c for _, c in CASES], ids=[i for i, _ in CASES])
@pytest.mark.parametrize("scale", [1.0, 0.01])  # small inputs make the LayerNorm epsilon matter
def test_matches_reference(config, scale):
    params, video = _case(config)
    model = model_from_scenic(config, params)
    np.testing.assert_allclose(logits(model, video * scale), reference.forward(config, params, video * scale),
                               atol=ATOL, rtol=0)


def test_model3_attention_order_changes_the_result():
    """Guards against an order that is read but not used: the same parameters give other logits."""
    configs = [reference.scenic_config("factorized_self_attention_block", "gap", order=o)
               for o in ("space_time", "time_space")]
    params, video = _case(configs[0])
    first, second = (logits(model_from_scenic(c, params), video) for c in configs)
    assert np.abs(first - second).max() > 1e-3


def test_image_size_is_read_from_the_position_embedding_when_the_config_has_no_crop():
    config = reference.scenic_config("factorized_encoder", "token", crop=[16, 16])
    params, video = _case(config)
    del config["dataset_configs"]["crop_size"]
    model = model_from_scenic(config, params)
    assert model.spec.image_size == (16, 16)
    np.testing.assert_allclose(logits(model, video), reference.forward(config, params, video), atol=ATOL, rtol=0)


# ---- bad checkpoints and configs ------------------------------------------------------------------------

def _model1() -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    config = reference.scenic_config("spacetime", "token", crop=16)
    return config, _case(config)[0]


def test_missing_parameter_is_named():
    config, params = _model1()
    del params["Transformer/encoderblock_1/MlpBlock_0/Dense_0/kernel"]
    with pytest.raises(ConfigError, match="missing parameter 'Transformer/encoderblock_1/MlpBlock_0/Dense_0/kernel'"):
        model_from_scenic(config, params)


def test_misshapen_parameter_is_named():
    """A head count that differs from the config's is caught although the flattened torch shape would fit."""
    config, params = _model1()
    params["Transformer/encoderblock_0/MultiHeadDotProductAttention_0/query/kernel"] = np.zeros((16, 4, 4), np.float32)
    with pytest.raises(ConfigError, match=r"'Transformer/encoderblock_0/MultiHeadDotProductAttention_0/query/kernel' "
                                          r"has shape \(16, 4, 4\), the config needs \(16, 2, 8\)"):
        model_from_scenic(config, params)


def test_parameters_the_config_does_not_use_are_named():
    """E.g. a model-3 checkpoint read with a model-1 config of the same widths."""
    config, params = _model1()
    params["Transformer/encoderblock_2/LayerNorm_0/scale"] = np.ones(16, np.float32)
    with pytest.raises(ConfigError, match="does not use, first 'Transformer/encoderblock_2/LayerNorm_0/scale'"):
        model_from_scenic(config, params)


@pytest.mark.parametrize("change, message", [
    ({"classifier": "token", "attention_config": {"type": "factorized_dot_product_attention"}},
     "classifier=token does not work"),
    ({"attention_config": {"type": "factorized_self_attention_block"}, "classifier": "gap"}, "attention_order"),
    ({"attention_config": {"type": "factorized_transformer_block"}}, "not implemented"),
    ({"attention_config": {"type": "joint"}}, "attention_config.type='joint'"),
    ({"temporal_encoding_config": {"method": "temporal_sampling"}}, "only '3d_conv'"),
    ({"num_heads": 3}, "3 heads do not divide"),
])
def test_bad_scenic_configs(change, message):
    config, params = _model1()
    config["model"].update(change)
    with pytest.raises(ConfigError, match=message):
        model_from_scenic(config, params)


# ---- the converter ------------------------------------------------------------------------------------

@needs_fixture
def test_converter_round_trip_through_the_family(fixture, tmp_path, capsys):
    """`python -m mtv.interop.convert` on the released-checkpoint layout, then the checkpoint loader."""
    (tmp_path / "config.json").write_text(json.dumps(fixture["meta"]))
    out = tmp_path / "vivit.ckpt"
    assert convert_main(["--config", str(tmp_path / "config.json"), "--checkpoint",
                         str(FIXTURE / f"{CASE}_checkpoint.msgpack"), "--out", str(out)]) == 0
    assert "vivit" in capsys.readouterr().out
    model, meta = load_model_checkpoint(out)
    assert meta["model_cfg"]["name"] == "vivit" and meta["num_classes"] == 5
    assert_fixture_logits(model, fixture["io"])
    # the stored node is a valid `model=vivit` node: the family builds the same architecture from it
    cfg = config_from_dict(meta["model_cfg"])
    rebuilt = get_family("vivit").build(cfg, ModelInputs(5, 8, (32, 32)))
    assert rebuilt.state_dict().keys() == model.state_dict().keys()
