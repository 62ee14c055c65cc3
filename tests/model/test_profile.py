"""Counts of `mtv.models.mtv.profile` against scenic's own numbers (shared/reference/scenic_reference.md §3).

Every model is built on the meta device, so the full-size rows cost no memory and the file runs in seconds.
Reference GMACs are written as printed in the reference. Totals must agree within 0.5 % (the acceptance
criterion); per-component counts agree with scenic to every printed digit, so they are held to that: half a
unit of the last printed digit (a printed integer, 0, exactly).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import pytest
import torch

import mtv
from mtv.models.mtv.profile import format_profile, profile_model

torch.set_num_threads(1)

CVA = {"type": "cva", "layers": [5, 11]}
CVA_REVERSED = {"type": "cva", "layers": [5, 11], "descending": False}


@dataclass(frozen=True)
class Row:
    """One row of scenic_reference.md §3; per-view lists are in scenic's (= our model's) view order."""

    id: str
    variant: str
    fusion: dict
    params_total: int
    gmacs_total: str
    num_classes: int = 400
    # parameters per component; tokenizer includes the view CLS tokens (scenic's two columns added)
    params: tuple[int, int, int, int, int] | None = None  # tokenizer, view encoders, fusion, global, head
    params_per_view: tuple[int, ...] = ()
    # GMACs per component: tokenizer, (view encoders...), fusion, global encoder, head
    gmacs: tuple[str, tuple[str, ...], str, str, str] | None = None


K400_VIEWS = (6_556_800, 22_552_320, 86_398_464)
ROWS = [
    Row("k400_as_written", "Ti/8+S/4+B/2", CVA, 304_270_864, "374.60",
        params=(3_540_288 + 16_128, 111_951_168, 2_221_824, 186_003_456, 538_000), params_per_view=K400_VIEWS,
        gmacs=("6.474", ("4.898", "39.187", "313.495"), "7.375", "3.168", "0.0005")),
    Row("t1a_B2+S4+Ti8_cva", "B/2+S/4+Ti/8", CVA, 304_270_864, "374.60",
        params=(3_540_288 + 16_128, 111_951_168, 2_221_824, 186_003_456, 538_000), params_per_view=K400_VIEWS,
        gmacs=("6.474", ("4.898", "39.187", "313.495"), "7.375", "3.168", "0.0005")),
    Row("t1a_B8+S4+Ti2_cva", "B/8+S/4+Ti/2", CVA, 309_134_608, "155.24",
        params=(6_194_496 + 9_216, 111_951_168, 4_438_272, 186_003_456, 538_000),
        params_per_view=(89_928_192, 22_552_320, 5_674_368),
        gmacs=("6.474", ("69.790", "39.187", "28.177"), "8.439", "3.168", "0.0005")),
    Row("t1a_B4+S8+Ti16_cva", "B/4+S/8+Ti/16", CVA, 307_790_992, "190.63",
        params=(7_079_232 + 8_064, 111_951_168, 2_221_824, 185_992_704, 538_000),
        params_per_view=(7_736_064, 23_730_432, 87_571_968),
        gmacs=("6.474", ("2.449", "19.593", "156.747"), "3.687", "1.675", "0.0005")),
    Row("t1b_B2+B4+B8_cva", "B/2+B/4+B/8", CVA, 699_284_368, "568.42",
        params=(8_259_840 + 21_504, 255_617_280, 9_458_688, 425_005_056, 922_000),
        params_per_view=(89_928_192, 87_571_968, 86_398_464),
        gmacs=("11.098", ("69.790", "145.302", "313.495"), "21.501", "7.235", "0.0009")),
    Row("t1e_B4+Ti8_cva", "B/4+Ti/8", CVA, 210_423_568, "157.15",
        params=(3_539_904 + 6_912, 90_581_952, 742_656, 115_167_744, 384_400),
        params_per_view=(6_556_800, 87_571_968),
        gmacs=("4.624", ("4.898", "145.302"), "1.284", "1.037", "0.0004")),
    Row("t1e_B4_single_view_no_fusion", "B/4", {"type": "none"}, 172_943_248, "144.04",
        params=(2_360_064 + 6_144, 85_205_760, 0, 85_063_680, 307_600), params_per_view=(87_571_968,),
        gmacs=("3.699", ("139.580",), "0", "0.766", "0.0003")),
    Row("t1e_B4_single_view_cva_cfg", "B/4", CVA, 172_946_320, "144.04",
        params=(2_360_064 + 6_144, 85_205_760, 3_072, 85_063_680, 307_600), params_per_view=(87_571_968,),
        gmacs=("3.699", ("139.580",), "0", "0.766", "0.0003")),
    Row("t1c_B2+S4+Ti8_bottleneck4", "B/2+S/4+Ti/8", {"type": "bottleneck", "layers": [5, 11], "bottleneck_tokens": 4},
        302_947_984, "367.64",
        params=(3_540_288 + 16_128, 111_951_168, 898_944, 186_003_456, 538_000), params_per_view=K400_VIEWS,
        gmacs=("6.474", ("4.917", "39.263", "313.799"), "0.014", "3.168", "0.0005")),
    Row("t1c_B2+S4+Ti8_no_fusion", "B/2+S/4+Ti/8", {"type": "none"}, 302_049_040, "367.22",
        params=(3_540_288 + 16_128, 111_951_168, 0, 186_003_456, 538_000), params_per_view=K400_VIEWS,
        gmacs=("6.474", ("4.898", "39.187", "313.495"), "0", "3.168", "0.0005")),
    Row("extra_k600_mtv_l2_cva", "Ti/16+S/8+B/4+L/2", {"type": "cva", "layers": [11, 23]}, 876_382_552, "1418.75",
        num_classes=600,
        params=(8_653_120 + 24_448, 414_462_272, 7_737_088, 444_084_224, 1_421_400),
        params_per_view=(7_736_064, 23_730_432, 87_571_968, 304_101_376),
        gmacs=("11.406", ("2.449", "19.593", "156.747", "1196.037"), "24.951", "7.560", "0.0014")),
    # scenic run with the views in the opposite order = our descending=False (only totals are published)
    Row("extra_order_reversed_B2+S4+Ti8_cva", "B/2+S/4+Ti/8", CVA_REVERSED, 306_487_312, "381.97"),
    Row("extra_order_reversed_B8+S4+Ti2_cva", "B/8+S/4+Ti/2", CVA_REVERSED, 306_918_160, "151.02"),
    Row("extra_order_reversed_B4+S8+Ti16_cva", "B/4+S/8+Ti/16", CVA_REVERSED, 310_007_440, "194.31"),
    Row("extra_order_reversed_B2+B4+B8_cva", "B/2+B/4+B/8", CVA_REVERSED, 699_284_368, "568.42"),
    Row("extra_order_reversed_B4+Ti8_cva", "B/4+Ti/8", CVA_REVERSED, 212_640_016, "161.00"),
]
DETAILED = [row for row in ROWS if row.params is not None]
BY_ID = {row.id: row for row in ROWS}


def assert_close(value: float, printed: str, what: str, rel: float = 0.0) -> None:
    """Equal to the printed reference when rounded like it (half a unit of its last digit), plus `rel`."""
    reference = float(printed)
    decimals = len(printed.partition(".")[2])
    tolerance = rel * abs(reference) + (0.5 * 10.0**-decimals if decimals else 0.0)
    assert abs(value - reference) <= tolerance, f"{what}: {value:.6f} vs scenic {printed}"


def build(variant: str, fusion: dict, num_classes: int = 400, num_frames: int = 32, image_size: int = 224,
          device: str = "meta") -> torch.nn.Module:
    with torch.device(device):
        return mtv.build_model({"variant": variant, "fusion": fusion}, num_classes=num_classes,
                               num_frames=num_frames, image_size=image_size)


@functools.cache
def profile_of(row_id: str) -> dict:
    """Profiles are shared by the tests of a row (read only)."""
    row = BY_ID[row_id]
    return profile_model(build(row.variant, row.fusion, row.num_classes), 32, 224)


@pytest.mark.parametrize("row", ROWS, ids=[row.id for row in ROWS])
def test_totals_match_scenic(row: Row) -> None:
    profile = profile_of(row.id)
    assert profile["params_total"] == row.params_total
    assert_close(profile["gmacs_per_view"], row.gmacs_total, "GMACs per clip", rel=0.005)


@pytest.mark.parametrize("row", DETAILED, ids=[row.id for row in DETAILED])
def test_components_match_scenic(row: Row) -> None:
    profile = profile_of(row.id)
    assert tuple(profile["params"].values()) == row.params
    assert tuple(profile["params_per_view"].values()) == row.params_per_view
    tokenizer, views, fusion, global_encoder, head = row.gmacs
    gmacs = profile["gmacs"]
    assert_close(gmacs["tokenizer"], tokenizer, "tokenizer")
    assert len(profile["gmacs_per_view_encoder"]) == len(views)
    for (label, value), printed in zip(profile["gmacs_per_view_encoder"].items(), views):
        assert_close(value, printed, f"view encoder {label}")
    assert gmacs["view_encoders"] == pytest.approx(sum(profile["gmacs_per_view_encoder"].values()))
    assert_close(gmacs["fusion"], fusion, "fusion")
    assert_close(gmacs["global_encoder"], global_encoder, "global encoder")
    assert_close(gmacs["head"], head, "head")


def test_view_labels_follow_model_order() -> None:
    profile = profile_of("t1a_B2+S4+Ti8_cva")  # written B/2+S/4+Ti/8, model order fewest tokens first
    assert list(profile["params_per_view"]) == ["Ti/8", "S/4", "B/2"]


def test_attention_matmuls_are_counted() -> None:
    """A tiny single view counted by hand: linear layers, QK^T and AV per time chunk, conv, global, head."""
    def exactly(macs: int) -> object:  # GMACs are floats: macs / 1e9
        return pytest.approx(macs / 1e9, rel=1e-12, abs=0)

    model = build("Ti/4", {"type": "none"}, num_classes=10, num_frames=8, image_size=32)
    profile = profile_model(model, 8, 32)
    d, mlp, layers = 192, 768, 12
    chunks, tokens = 2, 2 * 2 + 1  # t_min = 8/4 = 2 chunks of one slot: 2x2 patches + CLS
    linear = tokens * (4 * d * d + 2 * d * mlp)
    attention = 2 * tokens * tokens * d  # QK^T and AV over all heads
    assert profile["gmacs_per_view_encoder"]["Ti/4"] == exactly(chunks * layers * (linear + attention))
    assert profile["gmacs"]["tokenizer"] == exactly(chunks * 4 * d * (3 * 4 * 16 * 16))
    g_tokens, g_mlp = 1 + 2, 3072  # global CLS + t_max, at width 192
    g_layer = g_tokens * (4 * d * d + 2 * d * g_mlp) + 2 * g_tokens * g_tokens * d
    assert profile["gmacs"]["global_encoder"] == exactly(12 * g_layer)
    assert profile["gmacs"]["head"] == exactly(d * 10)


def test_mlp_fusion_counts_its_projections_as_fusion() -> None:
    """No scenic numbers exist for MLP fusion; its view encoders must cost what they cost without fusion."""
    plain = profile_of("t1c_B2+S4+Ti8_no_fusion")  # B/2+S/4+Ti/8, no fusion
    model = build("B/2+S/4+Ti/8", {"type": "mlp", "layers": [5, 11]})
    profile = profile_model(model, 32, 224)
    fusion_params = sum(p.numel() for name, p in model.named_parameters() if name.startswith("fusion."))
    assert profile["params"]["fusion"] == fusion_params > 0
    assert profile["gmacs_per_view_encoder"] == plain["gmacs_per_view_encoder"]
    assert profile["gmacs"]["fusion"] > 0
    assert profile["params_total"] == plain["params_total"] + fusion_params


def test_ensemble_is_the_sum_of_its_members() -> None:
    with torch.device("meta"):
        ensemble = mtv.build_model({"name": "ensemble", "members": ["B/4", "Ti/8"]}, 400, 32, 224)
    members = [profile_model(build(v, {"type": "none"}), 32, 224) for v in ("B/4", "Ti/8")]
    profile = profile_model(ensemble, 32, 224)
    assert profile["params_total"] == sum(p["params_total"] for p in members)
    assert profile["gmacs_per_view"] == pytest.approx(sum(p["gmacs_per_view"] for p in members))
    assert profile["params_per_view"] == {"members.0.B/4": 87_571_968, "members.1.Ti/8": 6_556_800}
    assert profile["members"] == members


def test_real_model_is_counted_in_place_and_left_alone() -> None:
    model = build("Ti/4+Ti/2", CVA | {"layers": [1]}, num_classes=10, num_frames=8, image_size=32, device="cpu")
    before = {name: p.clone() for name, p in model.state_dict().items()}
    profile = profile_model(model, 8, 32)
    assert profile["params_total"] == sum(p.numel() for p in model.parameters())
    assert profile == profile_model(build("Ti/4+Ti/2", CVA | {"layers": [1]}, 10, 8, 32), 8, 32)
    after = model.state_dict()
    assert all(after[name].device.type == "cpu" and torch.equal(after[name], t) for name, t in before.items())


def test_other_input_size_counts_the_model_built_at_that_size() -> None:
    model = build("B/2+S/4+Ti/8", CVA)
    at_320 = profile_model(model, 32, 320)
    built_at_320 = profile_model(build("B/2+S/4+Ti/8", CVA, image_size=320), 32, 320)
    assert at_320["gmacs"] == built_at_320["gmacs"]
    assert at_320["gmacs_per_view"] > 2 * profile_of("t1a_B2+S4+Ti8_cva")["gmacs_per_view"]
    assert at_320["params_total"] == 304_270_864  # the model's own parameters


def test_format_profile_lists_components_and_views() -> None:
    text = format_profile(profile_of("t1a_B2+S4+Ti8_cva"))
    for needle in ("304,270,864", "374.60 GMACs", "tokenizer (+ view CLS)", "view encoders", "fusion",
                   "global encoder", "head", "| Ti/8 | 6,556,800 | 4.8984 |", "| B/2 | 86,398,464 | 313.4950 |",
                   "| head | 538,000 | 0.000538 |"):
        assert needle in text


def test_compiled_model_is_counted_as_the_model_inside() -> None:
    model = build("B/4+Ti/8", CVA)
    assert profile_model(torch.compile(model), 32, 224) == profile_model(model, 32, 224)  # compiles nothing


def test_rejects_models_it_cannot_count() -> None:
    with pytest.raises(TypeError, match="MTV and Ensemble"):
        profile_model(torch.nn.Linear(2, 2), 8, 32)
