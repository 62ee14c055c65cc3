"""scenic interop: scenic's fixture logits, Flax msgpack reading, an independent NumPy reference on the
configurations the fixture does not cover, clear errors, and the converter's round trip through run.py's
checkpoint format."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import pytest
import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the test-only reference next to this file
import scenic_reference_impl as reference  # noqa: E402

from mtv import ConfigError  # noqa: E402
from mtv.interop.checkpoint import load_model_checkpoint  # noqa: E402
from mtv.interop.convert import checked_model_cfg  # noqa: E402
from mtv.interop.convert import main as convert_main
from mtv.interop.flax_msgpack import read_msgpack  # noqa: E402
from mtv.interop.scenic import model_from_scenic  # noqa: E402
from mtv.models.mtv.config import MTVConfig  # noqa: E402

torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[2]
ATOL = 2e-5  # scenic_reference.md §5: float32 ports agree to 1e-6..1e-5


def _fixture_dir() -> Path | None:
    candidates = [os.environ.get("MTV_SCENIC_FIXTURE"), REPO / "shared/reference/fixtures/scenic_tiny_cva",
                  REPO.parent / "shared/reference/fixtures/scenic_tiny_cva"]
    return next((Path(c) for c in candidates if c and (Path(c) / "tiny_cva_params.npz").is_file()), None)


FIXTURE = _fixture_dir()
needs_fixture = pytest.mark.skipif(FIXTURE is None, reason="scenic fixture not found (set MTV_SCENIC_FIXTURE)")


@pytest.fixture(scope="module")
def fixture() -> dict[str, Any]:
    """scenic's config, test parameters and input/outputs of the tiny CVA case."""
    config = json.loads((FIXTURE / "tiny_cva_config.json").read_text())
    with np.load(FIXTURE / "tiny_cva_params.npz") as params, np.load(FIXTURE / "tiny_cva_io.npz") as io:
        return {"json": config, "config": config["config"], "params": dict(params), "io": dict(io)}


def _torch_input(video: np.ndarray) -> torch.Tensor:
    """scenic's (B, T, H, W, C) -> our (B, 3, T, H, W)."""
    return torch.from_numpy(np.ascontiguousarray(video, dtype=np.float32)).permute(0, 4, 1, 2, 3)


def _logits(model: torch.nn.Module, video: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(_torch_input(video)).numpy()


def _nested(flat: Mapping[str, np.ndarray]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for path, value in flat.items():
        *parents, leaf = path.split("/")
        node = tree
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return tree


# ---- the fixture ----------------------------------------------------------------------------------------

@needs_fixture
@pytest.mark.parametrize("form", ["npz", "flat mapping", "nested mapping"])
def test_fixture_logits(fixture, form):
    params = {"npz": FIXTURE / "tiny_cva_params.npz", "flat mapping": fixture["params"],
              "nested mapping": _nested(fixture["params"])}[form]
    model = model_from_scenic(fixture["config"], params)
    assert not model.training
    logits = _logits(model, fixture["io"]["input"])
    np.testing.assert_allclose(logits, fixture["io"]["logits"], rtol=0, atol=ATOL)


@needs_fixture
def test_fixture_intermediates(fixture):
    """View-encoder outputs, the merged global input and pre-logits, not just the end result."""
    io = fixture["io"]
    model = model_from_scenic(fixture["config"], fixture["params"])
    video = _torch_input(io["input"])
    batch = video.shape[0]
    with torch.no_grad():
        encoded = model.encode_views(video)
        for i, x in enumerate(encoded):
            expected = io[f"mv_encoder_out_view{i}"]
            np.testing.assert_allclose(x.reshape(expected.shape).numpy(), expected, rtol=0, atol=ATOL)
        features = [view.slot_features(x, batch) for view, x in zip(model.views, encoded)]
        merged = model.global_encoder.merge_views(features)
        np.testing.assert_allclose(merged.numpy(), io["global_encoder_in_before_cls"], rtol=0, atol=ATOL)
        np.testing.assert_allclose(model.forward_features(video).numpy(), io["pre_logits"], rtol=0, atol=ATOL)


@needs_fixture
def test_reference_impl_reproduces_scenic(fixture):
    """The NumPy reference is trustworthy: scenic's shapes, logits and intermediates."""
    io = fixture["io"]
    shapes = reference.param_shapes(fixture["config"], io["input"].shape[2:4])
    assert shapes == {k: tuple(v) for k, v in fixture["json"]["param_shapes"].items()}
    out = reference.forward(fixture["config"], fixture["params"], io["input"])
    np.testing.assert_allclose(out["logits"], io["logits"], rtol=0, atol=1e-5)
    for key in ("embedding_view0_out", "embedding_view1_out", "mv_encoder_in_view0", "mv_encoder_in_view1",
                "mv_encoder_out_view0", "mv_encoder_out_view1", "global_encoder_in_before_cls",
                "global_encoder_out", "pre_logits"):
        np.testing.assert_allclose(out[key], io[key], rtol=0, atol=1e-5, err_msg=key)


def _sizes(name: str, t: int) -> dict[str, Any]:
    d, heads, mlp, layers = {"Ti": (192, 3, 768, 12), "S": (384, 6, 1536, 12), "B": (768, 12, 3072, 12),
                             "L": (1024, 16, 4096, 24)}[name]
    return {"hidden_size": d, "num_heads": heads, "mlp_dim": mlp, "num_layers": layers,
            "patches": {"size": [16, 16, t]}}


MTV_B = [("Ti", 8), ("S", 4), ("B", 2)]
CVA_5_11 = {"type": "cross_view_attention", "fusion_layers": [5, 11]}


@pytest.mark.parametrize("views, fusion, classes, total", [
    (MTV_B, CVA_5_11, 400, 304_270_864),
    (MTV_B, {"type": "bottleneck", "fusion_layers": [5, 11], "bottleneck_tokens": 4}, 400, 302_947_984),
    (MTV_B, None, 400, 302_049_040),
    ([("B", 4)], CVA_5_11, 400, 172_946_320),
    ([("B", 2), ("S", 4), ("Ti", 8)], CVA_5_11, 400, 306_487_312),
    ([("Ti", 16), ("S", 8), ("B", 4), ("L", 2)], {"type": "cross_view_attention", "fusion_layers": [11, 23]}, 600,
     876_382_552),
])
def test_reference_param_shapes_count_like_scenic(views, fusion, classes, total):
    """The shape generator against scenic's own parameter counts (scenic_reference.md §3), full size."""
    config = {"dataset_configs": {"num_classes": classes, "num_frames": 32},
              "model": {"view_configs": [_sizes(*v) for v in views], "cross_view_fusion": fusion,
                        "classifier": "token", "global_encoder_config": {"num_layers": 12, "num_heads": 8,
                                                                         "mlp_dim": 3072, "hidden_size": 768}}}
    shapes = reference.param_shapes(config, (224, 224))
    assert sum(int(np.prod(shape)) for shape in shapes.values()) == total


# ---- Flax msgpack checkpoints ----------------------------------------------------------------------------

def _pack_ndarray(array: np.ndarray) -> bytes:
    """Flax's ndarray encoding: msgpack of (shape, dtype name, C-order bytes)."""
    return msgpack.packb((list(array.shape), array.dtype.name, array.tobytes("C")), use_bin_type=True)


def _flax_default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return msgpack.ExtType(1, _pack_ndarray(obj))
    if isinstance(obj, np.generic):
        return msgpack.ExtType(3, _pack_ndarray(np.asarray(obj)))
    raise TypeError(f"cannot pack {type(obj)}")


def _chunked(array: np.ndarray, chunk: int) -> dict[str, Any]:
    """What Flax writes for an array over its 2**30-byte limit (here with a tiny chunk size)."""
    flat = array.reshape(-1)
    chunks = [flat[i:i + chunk] for i in range(0, flat.size, chunk)]
    return {"__msgpack_chunked_array__": True,
            "shape": {str(i): d for i, d in enumerate(array.shape)},
            "chunks": {str(i): c for i, c in enumerate(chunks)}}


def write_flax_msgpack(path: Path, state: Mapping[str, Any]) -> None:
    path.write_bytes(msgpack.packb(state, default=_flax_default, strict_types=True, use_bin_type=True))


def _train_state(layout: str, params: Mapping[str, np.ndarray]) -> dict[str, Any]:
    tree = _nested(params)
    step = np.int64(1234)
    if layout == "current":  # scenic TrainState with optax: params at the top level
        return {"global_step": step, "params": tree, "opt_state": {"0": {"count": np.int32(7)}, "1": {}},
                "model_state": {}, "rng": np.arange(2, dtype=np.uint32), "metadata": {"chrono": {}}}
    if layout == "variables":  # a Flax variables dict stored as the params
        return {"params": {"params": tree}, "global_step": step}
    if layout == "2022":  # flax.optim Optimizer: optimizer/target
        return {"global_step": step, "optimizer": {"target": tree, "state": {"step": step, "param_states": {}}},
                "model_state": {}, "rng": np.arange(2, dtype=np.uint32), "accum_train_time": np.float64(3.5)}
    if layout == "chunked":  # the largest array split into Flax's chunked form
        state = {"params": tree, "global_step": step}
        tree["embedding_view0"]["kernel"] = _chunked(params["embedding_view0/kernel"], chunk=1000)
        return state
    raise ValueError(layout)


@needs_fixture
@pytest.mark.parametrize("layout", ["current", "variables", "2022", "chunked"])
def test_msgpack_checkpoint_logits(fixture, tmp_path, layout):
    path = tmp_path / "checkpoint_1234"
    write_flax_msgpack(path, _train_state(layout, fixture["params"]))
    model = model_from_scenic(fixture["config"], path)
    np.testing.assert_allclose(_logits(model, fixture["io"]["input"]), fixture["io"]["logits"], rtol=0, atol=ATOL)


def test_msgpack_reads_chunks_scalars_bfloat16_and_latest_step(tmp_path):
    array = np.arange(24, dtype=np.float32).reshape(2, 3, 4) - 5.5
    bf16 = np.array([1.5, -2.0, 0.15625], dtype=np.float32)
    bf16_bytes = (bf16.view(np.uint32) >> 16).astype(np.uint16).tobytes()  # exact: these fit in bfloat16
    state = {"params": {"a": _chunked(array, chunk=5),
                        "b": msgpack.ExtType(1, msgpack.packb(([3], "bfloat16", bf16_bytes), use_bin_type=True))},
             "step": np.int64(5)}
    write_flax_msgpack(tmp_path / "checkpoint_9", {"params": {"a": array * 0}})
    write_flax_msgpack(tmp_path / "checkpoint_10", state)
    read = read_msgpack(tmp_path)  # a directory: the highest step
    np.testing.assert_array_equal(read["params"]["a"], array)
    assert read["params"]["b"].dtype == np.float32
    np.testing.assert_array_equal(read["params"]["b"], bf16)
    assert read["step"] == 5


def test_not_a_checkpoint_is_a_clear_error(tmp_path):
    torch.save({"x": torch.zeros(2)}, tmp_path / "model.pt")
    with pytest.raises(ConfigError, match="not a Flax"):
        read_msgpack(tmp_path / "model.pt")
    write_flax_msgpack(tmp_path / "state", {"step": np.int64(1)})
    with pytest.raises(ConfigError, match="no model parameters"):
        model_from_scenic({"model": {}}, tmp_path / "state")


# ---- configurations the fixture does not cover, against the NumPy reference --------------------------------

IMAGE, FRAMES, CLASSES = (16, 16), 8, 5


def view(d: int, heads: int, layers: int, patch: tuple[int, int, int]) -> dict[str, Any]:
    return {"hidden_size": d, "num_heads": heads, "mlp_dim": 2 * d, "num_layers": layers,
            "patches": {"size": list(patch)}}


def cva(layers: list[int], descending: bool = True, query: bool = True) -> dict[str, Any]:
    return {"type": "cross_view_attention", "fusion_layers": layers, "fuse_in_descending_order": descending,
            "use_query_config": query}


def bottleneck(layers: list[int], descending: bool = True) -> dict[str, Any]:
    return {"type": "bottleneck", "fusion_layers": layers, "fuse_in_descending_order": descending,
            "bottleneck_tokens": 3}


def scenic_config(views: list[dict], fusion: dict | None, merge: str = "channel", classifier: str = "token",
                  global_layers: int = 1) -> dict[str, Any]:
    return {
        "dataset_configs": {"num_classes": CLASSES, "num_frames": FRAMES},
        "model": {
            "view_configs": views, "cross_view_fusion": fusion, "classifier": classifier,
            "global_encoder_config": {"num_layers": global_layers, "num_heads": 2, "mlp_dim": 32, "hidden_size": 24,
                                      "merge_axis": merge},
            "temporal_encoding_config": {"method": "3d_conv", "kernel_init_method": "central_frame_initializer"},
            "dropout_rate": 0.0, "attention_dropout_rate": 0.0, "stochastic_depth": 0.0,
        },
    }


# three views, fewest tokens first: 2x4, 4x4 and 4x16 tokens per clip
V3 = [view(16, 2, 2, (8, 8, 4)), view(24, 3, 2, (8, 8, 2)), view(32, 4, 2, (4, 4, 2))]
# four views, the last one deeper: CVA at its last layer still updates the three finished views
V4_DEEP_LAST = [view(16, 2, 2, (8, 8, 8)), view(16, 4, 2, (8, 8, 4)), view(24, 3, 2, (8, 8, 2)),
                view(32, 4, 3, (4, 4, 2))]

# id -> (config, Flax path fragments whose parameters must change the logits: the case really exercises them)
CASES: dict[str, tuple[dict[str, Any], tuple[str, ...]]] = {
    "cva_3views": (scenic_config(V3, cva([0, 1])), ("cross_attention_view0_1/out", "cross_attention_view1_2/out")),
    "cva_4views_deeper_last": (scenic_config(V4_DEEP_LAST, cva([2])),
                               ("cross_view_encoderblock_2/cross_attention_view0_1/",)),
    "cva_4views_two_layers": (scenic_config(V4_DEEP_LAST, cva([0, 2])),
                              ("cross_view_encoderblock_0/cross_attention_view2_3/",)),
    "cva_ascending_kv_config": (
        scenic_config([view(16, 2, 3, (8, 8, 4)), view(24, 3, 2, (8, 8, 2)), view(32, 2, 2, (4, 4, 2))],
                      cva([1, 2], descending=False, query=False)),
        ("cross_view_encoderblock_2/cross_attention_view1_0/", "cross_view_encoderblock_1/cross_attention_view2_1/")),
    "cva_kv_config": (scenic_config(V3, cva([1], query=False)), ("cross_attention_view0_1/",)),
    "bottleneck_descending": (scenic_config(V3, bottleneck([0, 1])), ("bottleneck",)),
    "bottleneck_ascending_depths": (
        scenic_config([view(16, 2, 2, (8, 8, 4)), view(16, 2, 3, (8, 8, 2)), view(32, 4, 3, (4, 4, 2))],
                      bottleneck([1, 2], descending=False)),
        ("bottleneck_linear_2_view1",)),
    "bottleneck_descending_depths": (
        scenic_config([view(16, 2, 3, (8, 8, 4)), view(24, 2, 2, (8, 8, 2)), view(32, 4, 2, (4, 4, 2))],
                      bottleneck([1, 2])),
        ("bottleneck_linear_1_view1",)),
    "bottleneck_first_views_finished": (  # layer 2: views 2 and 1 have ended, the bottleneck goes 32 -> 16
        scenic_config([view(16, 2, 3, (8, 8, 4)), view(24, 2, 2, (8, 8, 2)), view(32, 4, 2, (4, 4, 2))],
                      bottleneck([2])),
        ("bottleneck_linear_2_view0",)),
    "no_fusion": (scenic_config(V3[:2], None), ()),
    "cva_without_layers": (scenic_config(V3[:2], cva([])), ()),
    "bottleneck_without_layers": (scenic_config(V3[:2], bottleneck([])), ()),
    "merge_time": (scenic_config(V3, cva([1]), merge="time", global_layers=2), ("global_encoder_linear_view0",)),
    "merge_time_gap": (scenic_config(V3, bottleneck([0]), merge="time", classifier="gap"), ("bottleneck",)),
    "gap": (scenic_config(V3, cva([0]), classifier="gap"), ("cross_attention_view1_2/",)),
    "nonsquare_patches": (scenic_config([view(16, 2, 2, (8, 4, 4)), view(32, 4, 2, (4, 8, 2))], cva([1])),
                          ("cross_attention_view0_1/",)),
    "single_view_with_cva_block": (scenic_config([view(32, 4, 2, (4, 4, 2))], cva([1])),
                                    ("cross_view_encoderblock_1/msa_view0",)),
    "tile_by_4": (scenic_config([view(16, 2, 2, (8, 8, 8)), view(32, 4, 2, (4, 4, 2))], cva([0, 1])), ()),
}


def _case(name: str, seed: int = 0) -> tuple[dict[str, Any], dict[str, np.ndarray], np.ndarray]:
    config, _ = CASES[name]
    params = reference.random_params(reference.param_shapes(config, IMAGE), seed)
    video = np.random.default_rng(seed + 100).standard_normal((2, FRAMES, *IMAGE, 3)).astype(np.float32)
    return config, params, video


@pytest.mark.parametrize("name", list(CASES))
def test_matches_reference(name):
    config, params, video = _case(name)
    expected = reference.forward(config, params, video)["logits"]
    assert np.abs(expected).max() > 0.1  # a meaningful signal, not a degenerate zero
    model = model_from_scenic(config, params)
    np.testing.assert_allclose(_logits(model, video), expected, rtol=0, atol=ATOL)
    # the case exercises what it is named for: those parameters change scenic's logits
    for fragment in CASES[name][1]:
        touched = {k: np.zeros_like(v) if fragment in k else v for k, v in params.items()}
        assert any(fragment in k for k in params), fragment
        changed = np.abs(reference.forward(config, touched, video)["logits"] - expected).max()
        assert changed > 100 * ATOL, f"{fragment} does not influence the logits of {name}"


def test_non_square_image_needs_and_uses_crop_size():
    config, _ = CASES["nonsquare_patches"]
    config = json.loads(json.dumps(config))
    image = (16, 32)
    params = reference.random_params(reference.param_shapes(config, image), 3)
    video = np.random.default_rng(4).standard_normal((1, FRAMES, *image, 3)).astype(np.float32)
    # patches 8x4 and 4x8 give 16 tokens each on 16x32, but also on 32x16, 8x64, 64x8: no square to prefer
    with pytest.raises(ConfigError, match="crop_size"):
        model_from_scenic(config, params)
    config["dataset_configs"]["crop_size"] = list(image)
    model = model_from_scenic(config, params)
    expected = reference.forward(config, params, video)["logits"]
    np.testing.assert_allclose(_logits(model, video), expected, rtol=0, atol=ATOL)


def test_missing_num_classes_is_read_from_the_head():
    """scenic's k600/k700 MTV-L configs lose dataset_configs.num_classes."""
    config, params, video = _case("cva_3views")
    config = json.loads(json.dumps(config))
    del config["dataset_configs"]["num_classes"]
    assert model_from_scenic(config, params).config.num_classes == CLASSES


# ---- parameters that do not fit the config ----------------------------------------------------------------

def test_wrong_shape_names_the_key():
    config, params, _ = _case("cva_3views")
    key = "MultiviewEncoder/posembed_input_view1/pos_embedding"
    with pytest.raises(ConfigError, match=f"'{key}' has shape \\(1, 4, 24\\), the config needs \\(1, 5, 24\\)"):
        model_from_scenic(config, {**params, key: params[key][:, :4]})


def test_wrong_head_count_is_caught_even_when_sizes_fit():
    """(d, 3, 8) and (d, 2, 12) attention kernels flatten alike; only the Flax shape tells them apart."""
    config, params, _ = _case("cva_3views")
    wrong = json.loads(json.dumps(config))
    wrong["model"]["view_configs"][1]["num_heads"] = 2
    message = "msa_view1/query/kernel' has shape \\(24, 3, 8\\), the config needs \\(24, 2, 12\\)"
    with pytest.raises(ConfigError, match=message):
        model_from_scenic(wrong, params)


def test_missing_key_names_the_key():
    config, params, _ = _case("cva_3views")
    key = "MultiviewEncoder/cross_view_encoderblock_1/cross_attention_view0_1/out/bias"
    with pytest.raises(ConfigError, match=f"missing parameter '{key}'"):
        model_from_scenic(config, {k: v for k, v in params.items() if k != key})


def test_parameters_the_config_does_not_use_are_an_error():
    config, params, _ = _case("no_fusion")
    shallow = json.loads(json.dumps(config))
    shallow["model"]["view_configs"][0]["num_layers"] = 1
    with pytest.raises(ConfigError, match="does not use: MultiviewEncoder/encoderblock_1_view0/"):
        model_from_scenic(shallow, params)


def test_unsupported_scenic_options_are_config_errors():
    config, params, _ = _case("cva_3views")
    for change, match in ((("model", "cross_view_fusion", "type"), "mlp"), (("model", "classifier"), "gmp")):
        bad = json.loads(json.dumps(config))
        node = bad
        for key in change[:-1]:
            node = node[key]
        node[change[-1]] = match
        with pytest.raises(ConfigError, match=match):
            model_from_scenic(bad, params)


# ---- the converter and run.py's checkpoint format --------------------------------------------------------

def _as_ml_collections_dump(config: dict[str, Any]) -> str:
    """YAML as `yaml.dump(config.to_dict())` writes a scenic config: tuples tagged !!python/tuple."""
    config = json.loads(json.dumps(config))
    for v in config["model"]["view_configs"]:
        v["patches"]["size"] = tuple(v["patches"]["size"])
    fusion = config["model"]["cross_view_fusion"]
    fusion["fusion_layers"] = tuple(fusion["fusion_layers"])
    return yaml.dump(config)


@needs_fixture
@pytest.mark.parametrize("form", ["yaml + 2022 msgpack", "fixture json + npz"])
def test_convert_fixture_round_trip(fixture, tmp_path, form):
    """scenic checkpoint + config -> converted checkpoint -> mtv.build_model + weights -> scenic's logits."""
    if form == "yaml + 2022 msgpack":
        write_flax_msgpack(tmp_path / "checkpoint_1", _train_state("2022", fixture["params"]))
        (tmp_path / "config.yaml").write_text(_as_ml_collections_dump(fixture["config"]))
        config, checkpoint = tmp_path / "config.yaml", tmp_path / "checkpoint_1"
    else:  # the fixture's JSON wraps scenic's config as {"config": ...}
        config, checkpoint = FIXTURE / "tiny_cva_config.json", FIXTURE / "tiny_cva_params.npz"
    out = tmp_path / "tiny.ckpt"
    assert convert_main(["--config", str(config), "--checkpoint", str(checkpoint), "--out", str(out)]) == 0
    model, meta = load_model_checkpoint(out)
    assert (meta["num_classes"], meta["num_frames"], meta["image_size"], meta["source"]) == (10, 8, [32, 32], "scenic")
    views = model.config.views
    assert [(v.hidden_size, v.patch) for v in views] == [(32, (8, 8, 4)), (64, (8, 4, 2))]  # scenic's order kept
    np.testing.assert_allclose(_logits(model, fixture["io"]["input"]), fixture["io"]["logits"], rtol=0, atol=ATOL)
    saved = torch.load(out, weights_only=True)
    assert set(saved) == {"state_dict", "model_cfg", "num_classes", "num_frames", "image_size", "source"}
    assert all(key.startswith("model.") for key in saved["state_dict"])


@pytest.mark.parametrize("name", ["cva_4views_deeper_last", "cva_ascending_kv_config", "bottleneck_ascending_depths",
                                  "merge_time_gap", "nonsquare_patches", "no_fusion"])
def test_convert_round_trip_matches_reference(name, tmp_path):
    config, params, video = _case(name)
    np.savez(tmp_path / "params.npz", **params)
    (tmp_path / "config.json").write_text(json.dumps(config))
    assert convert_main(["--config", str(tmp_path / "config.json"), "--checkpoint", str(tmp_path / "params.npz"),
                         "--out", str(tmp_path / "out.ckpt")]) == 0
    model, _ = load_model_checkpoint(tmp_path / "out.ckpt")
    np.testing.assert_allclose(_logits(model, video), reference.forward(config, params, video)["logits"],
                               rtol=0, atol=ATOL)


def _released(views: list[tuple[str, int]], layers: list[int]) -> MTVConfig:
    """A released-size scenic config (k400 MTV-B style), without building the (large) model."""
    config = {"dataset_configs": {"num_classes": 400, "num_frames": 32},
              "model": {"view_configs": [_sizes(*v) for v in views], "cross_view_fusion": cva(layers),
                        "classifier": "token",
                        "global_encoder_config": {"num_layers": 12, "num_heads": 8, "mlp_dim": 3072,
                                                  "hidden_size": 768, "merge_axis": "channel"},
                        "dropout_rate": 0.0, "attention_dropout_rate": 0.0, "stochastic_depth": 0.1}}
    return MTVConfig.from_scenic(config, image_size=224)


def test_standard_sizes_become_a_variant():
    mtv_b = checked_model_cfg(_released(MTV_B, [5, 11]))
    assert (mtv_b["variant"], mtv_b["encoder_sizes"]) == ("Ti/8+S/4+B/2", None)
    assert mtv_b["fusion"] == {"type": "cva", "layers": [5, 11], "bottleneck_tokens": 4, "descending": True,
                               "use_query_config": True}
    assert mtv_b["stochastic_depth"] == 0.1
    mtv_l = checked_model_cfg(_released([("Ti", 16), ("S", 8), ("B", 4), ("L", 2)], [11, 23]))
    assert mtv_l["variant"] == "Ti/16+S/8+B/4+L/2"


def test_view_order_the_hydra_config_cannot_express_is_refused():
    """scenic's order B/2+S/4+Ti/8 (most tokens first) would be re-sorted by MTVConfig.from_cfg."""
    with pytest.raises(ConfigError, match="not fewest-tokens-first"):
        checked_model_cfg(_released([("B", 2), ("S", 4), ("Ti", 8)], [5, 11]))


def test_load_model_checkpoint_rejects_other_files(tmp_path):
    torch.save({"state_dict": {}}, tmp_path / "lightning.ckpt")
    with pytest.raises(ConfigError, match="missing model_cfg"):
        load_model_checkpoint(tmp_path / "lightning.ckpt")


def test_convert_command_line(tmp_path):
    config, params, _ = _case("no_fusion")
    np.savez(tmp_path / "params.npz", **params)
    (tmp_path / "config.json").write_text(json.dumps(config))
    command = [sys.executable, "-m", "mtv.interop.convert", "--config", str(tmp_path / "config.json"),
               "--checkpoint", str(tmp_path / "params.npz"), "--out", str(tmp_path / "out.ckpt")]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "wrote" in done.stdout and (tmp_path / "out.ckpt").is_file()
    missing = [*command[:6], str(tmp_path / "missing.npz"), *command[7:]]
    bad = subprocess.run(missing, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "missing.npz" in bad.stderr
