"""The `vivit` model family through the registry: counts against scenic's full-size numbers, every bad-input
error, the YAML presets against the schema, and the training hooks (weight decay, layer-wise lr decay)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from mtv import ConfigError
from mtv.models.layers import Block
from mtv.models.registry import ModelInputs, get_family
from mtv.models.vivit.config import ViViTConfig, resolve
from mtv.models.vivit.model import FactorizedSelfAttentionBlock, ViViT

REPO = Path(__file__).resolve().parents[3]
K400 = ModelInputs(num_classes=400, num_frames=32, image_size=(224, 224))
TINY = {"B": {"hidden_size": 16, "num_heads": 2, "mlp_dim": 24, "num_layers": 2}}
TINY_INPUTS = ModelInputs(num_classes=3, num_frames=4, image_size=(16, 16))
FAMILY = get_family("vivit")


def tiny(attention: str = "spacetime", classifier: str = "token", **changes) -> ViViTConfig:
    return ViViTConfig(variant="B/4x2", attention=attention, classifier=classifier, encoder_sizes=TINY, **changes)


# ---- counts: vivit_spec.md §3 (scenic's own numbers) ------------------------------------------------------

# (variant, attention, classifier, order, temporal layers, total params, GMACs)
ROWS = [
    ("B/2", "spacetime", "token", "space_time", 4, 88_954_000, 451.52),
    ("B/2", "factorized_encoder", "token", "space_time", 4, 115_062_928, 283.34),
    ("B/2", "factorized_self_attention", "gap", "space_time", 4, 117_319_312, 371.09),
    ("B/2", "factorized_dot_product", "gap", "space_time", 4, 88_952_464, 276.18),
    ("L/2", "spacetime", "token", "space_time", 4, 307_508_624, 1435.97),
    ("L/2", "factorized_encoder", "token", "space_time", 24, 606_827_920, 992.47),
    ("L/2", "factorized_self_attention", "gap", "space_time", 4, 408_317_328, 1300.33),
    ("L/2", "factorized_dot_product", "gap", "space_time", 4, 307_506_576, 968.31),
    ("B/2", "spacetime", "gap", "space_time", 4, 88_952_464, 451.32),
    ("B/2", "factorized_encoder", "gap", "space_time", 4, 115_059_856, 281.84),
    ("B/2", "factorized_self_attention", "gap", "time_space", 4, 117_319_312, 371.09),
    ("L/2", "factorized_encoder", "token", "space_time", 4, 354_903_440, 988.18),
]


def meta_model(cfg: ViViTConfig, inputs: ModelInputs = K400) -> ViViT:
    with torch.device("meta"):
        return ViViT(resolve(cfg, inputs))


@pytest.mark.parametrize("row", ROWS, ids=[f"{r[0]}-{r[1]}-{r[2]}-{r[3]}-Lt{r[4]}" for r in ROWS])
def test_counts_match_scenic(row):
    variant, attention, classifier, order, temporal, params, gmacs = row
    cfg = ViViTConfig(variant=variant, attention=attention, classifier=classifier, attention_order=order)
    cfg.temporal_encoder.num_layers = temporal
    profile = FAMILY.profile(meta_model(cfg), K400)
    assert profile["params_total"] == params
    assert profile["gmacs_per_view"] == pytest.approx(gmacs, rel=0.005)
    assert profile["input"] == [1, 3, 32, 224, 224]
    assert sum(profile["params"].values()) == params
    assert sum(profile["gmacs"].values()) == pytest.approx(profile["gmacs_per_view"])


def test_model2_components_match_scenic():
    """Per top-level module (spec §3): embedding, spatial / temporal transformer with their CLS, head."""
    profile = FAMILY.profile(meta_model(ViViTConfig(attention="factorized_encoder")), K400)
    assert profile["params"] == {"tokenizer": 1_180_416, "spatial_encoder": 85_207_296 + 768,
                                 "temporal_encoder": 28_366_080 + 768, "head": 307_600}
    assert profile["gmacs"]["tokenizer"] == pytest.approx(3.699, abs=1e-3)
    assert profile["gmacs"]["temporal_encoder"] == pytest.approx(0.48, abs=0.01)  # spec §3: 0.48 for B
    assert profile["gmacs"]["spatial_encoder"] == pytest.approx(279.16, rel=1e-3)


def test_profile_counts_at_the_requested_input_size():
    model = meta_model(ViViTConfig())
    small = FAMILY.profile(model, ModelInputs(400, 16, (224, 224)))
    assert small["input"] == [1, 3, 16, 224, 224]
    assert small["gmacs_per_view"] < FAMILY.profile(model, K400)["gmacs_per_view"] / 2


def test_format_profile_is_a_markdown_table():
    text = FAMILY.format_profile(FAMILY.profile(meta_model(ViViTConfig(attention="factorized_encoder")), K400))
    assert "ViViT-B/16x2 model 2 (factorized_encoder)" in text
    assert "| temporal_encoder | 28,366,848 |" in text and "**115,062,928**" in text


# ---- building through the registry ------------------------------------------------------------------------

@pytest.mark.parametrize("attention, classifier", [("spacetime", "token"), ("factorized_encoder", "token"),
                                                   ("factorized_self_attention", "gap"),
                                                   ("factorized_dot_product", "gap")])
def test_build_trains_and_gives_logits(attention, classifier):
    cfg = tiny(attention, classifier, dropout=0.1, attention_dropout=0.1, stochastic_depth=0.2)
    model = FAMILY.build(cfg, TINY_INPUTS)
    video = torch.rand(2, 3, 4, 16, 16) * 2 - 1
    assert torch.count_nonzero(model(video)) == 0  # scenic's zero head
    torch.nn.init.normal_(model.head.weight)
    model.train()
    model(video).sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    model.eval()
    assert model(video).shape == (2, 3)


@pytest.mark.parametrize("scenic_name, ours", [("factorized_self_attention_block", "factorized_self_attention"),
                                               ("factorized_dot_product_attention", "factorized_dot_product")])
def test_scenic_attention_names_are_aliases(scenic_name, ours):
    assert resolve(tiny(scenic_name, "gap"), TINY_INPUTS) == resolve(tiny(ours, "gap"), TINY_INPUTS)


def test_temporal_encoder_widths_are_settable():
    cfg = tiny("factorized_encoder")
    cfg.temporal_encoder.num_layers, cfg.temporal_encoder.num_heads, cfg.temporal_encoder.mlp_dim = 3, 4, 8
    model = FAMILY.build(cfg, TINY_INPUTS)
    assert len(model.temporal_encoder.blocks) == 3
    block = model.temporal_encoder.blocks[0]
    assert block.attn.num_heads == 4 and block.mlp.fc1.out_features == 8
    assert model.spatial_encoder.blocks[0].attn.num_heads == 2


def test_stochastic_depth_follows_scenic():
    """A linear ramp lyr / (L - 1) * rate in plain blocks; model 3's block has none in scenic."""
    model = FAMILY.build(tiny(stochastic_depth=0.3), TINY_INPUTS)
    assert [b.drop_path for b in model.encoder.blocks] == [0.0, 0.3]
    model3 = FAMILY.build(tiny("factorized_self_attention", "gap", stochastic_depth=0.3), TINY_INPUTS)
    assert all(isinstance(b, FactorizedSelfAttentionBlock) for b in model3.encoder.blocks)
    assert not any(isinstance(m, Block) for m in model3.modules())


def test_stochastic_depth_keeps_rows_unscaled_as_scenic():
    """scenic's ViViT blocks compute x + y * (1 - drop) per example, without MTV's 1/(1-p) rescaling."""
    model = FAMILY.build(tiny(stochastic_depth=0.5), TINY_INPUTS).train()
    block = model.encoder.blocks[1]  # rate 0.5
    torch.manual_seed(0)
    x = torch.randn(64, 5, 16)
    branch = block.mlp(block.norm2(x))
    rows = (block.mlp_residual(x) - x).detach()
    kept = [torch.allclose(r, b, atol=1e-6) for r, b in zip(rows, branch.detach())]
    dropped = [bool(torch.all(r == 0)) for r in rows]
    assert all(k or d for k, d in zip(kept, dropped)) and 10 < sum(kept) < 54


def test_random_init_puts_the_kernel_on_the_central_frame():
    """What scenic's central_frame_initializer means to do; its random init zeroes the width axis instead,
    which the fixture's raw init shows (only width column 1 is set, in both frames)."""
    model = FAMILY.build(ViViTConfig(variant="B/4x4", encoder_sizes=TINY), ModelInputs(3, 8, (16, 16)))
    kernel = model.tokenizer.weight  # (d, 3, t, h, w)
    assert [bool(kernel[:, :, t].abs().sum()) for t in range(4)] == [False, False, True, False]
    init = REPO.parent / "shared/reference/fixtures/vivit/tiny_model1_spacetime_params_init.npz"
    if init.is_file():
        import numpy as np

        with np.load(init) as params:
            scenic = params["embedding/kernel"]  # (t, h, w, 3, d)
        assert [bool(np.abs(scenic[:, :, w]).sum()) for w in range(scenic.shape[2])] == [False, True] + [False] * 6


# ---- bad input: one ConfigError naming the key, before any tensor ---------------------------------------

@pytest.mark.parametrize("cfg, inputs, message", [
    (tiny("factorized_self_attention", "token"), TINY_INPUTS,
     r"classifier=token does not work.*Set model.classifier=gap"),
    (tiny("factorized_dot_product", "token"), TINY_INPUTS, r"CLS token could not gather the whole clip"),
    (ViViTConfig(variant="B/4x2", attention="factorized_dot_product", classifier="gap",
                 encoder_sizes={"B": {"hidden_size": 18, "num_heads": 3, "mlp_dim": 8, "num_layers": 1}}),
     TINY_INPUTS, r"splits the heads in two halves .* has 3 heads"),
    (tiny(), ModelInputs(3, 5, (16, 16)), r"data.num_frames=5 is not divisible into tubelets of 2 frames"),
    (tiny(), ModelInputs(3, 4, (16, 18)), r"image size 16x18 \(data.crop_size\) is not divisible"),
    (tiny("joint"), TINY_INPUTS, r"model.attention='joint' is not one of"),
    (tiny("factorized_self_attention", "gap", attention_order="space"), TINY_INPUTS, r"model.attention_order='space'"),
    (tiny(classifier="gmp"), TINY_INPUTS, r"model.classifier='gmp'"),
    (ViViTConfig(variant="B/2+S/4"), K400, r"ViViT has one encoder"),
    (tiny(dropout=1.5), TINY_INPUTS, r"model.dropout=1.5"),
    (replace(tiny("factorized_encoder"), temporal_encoder=type(tiny().temporal_encoder)(num_heads=3)), TINY_INPUTS,
     r"model.temporal_encoder.num_heads=3 does not divide"),
])
def test_bad_input_is_one_clear_error(cfg, inputs, message):
    with pytest.raises(ConfigError, match=message):
        FAMILY.validate(cfg, inputs)
    with pytest.raises(ConfigError, match=message):
        FAMILY.build(cfg, inputs)


# ---- YAML presets against the schema ---------------------------------------------------------------------

def test_yaml_preset_is_valid_for_the_schema():
    node = OmegaConf.load(REPO / "conf/model/vivit.yaml")
    assert list(node.pop("defaults"))[:2] == ["vivit_schema", "_self_"]
    cfg = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(ViViTConfig), node))
    assert cfg.name == "vivit"
    FAMILY.validate(cfg, K400)
    FAMILY.validate(replace(cfg, attention="factorized_dot_product", classifier="gap"), K400)


# ---- training hooks -----------------------------------------------------------------------------------

@pytest.mark.parametrize("attention, classifier", [("spacetime", "token"), ("factorized_encoder", "token"),
                                                   ("factorized_self_attention", "gap")])
def test_layer_ids_run_from_input_to_head(attention, classifier):
    model = FAMILY.build(tiny(attention, classifier), TINY_INPUTS)
    ids = {name: model.layer_id(name) for name, _ in model.named_parameters()}
    last = model.num_layers_for_lr_decay - 1
    assert min(ids.values()) == 0 and ids["tokenizer.weight"] == 0 and ids["head.weight"] == last
    assert set(ids.values()) == set(range(model.num_layers_for_lr_decay))
    blocks = [n for n in ids if ".blocks." in n]
    order = sorted(blocks, key=lambda n: (n.startswith("temporal"), int(n.split(".")[2])))
    assert [ids[n] for n in order] == sorted(ids[n] for n in order)


def test_no_weight_decay_names_cls_and_position_embeddings():
    model = FAMILY.build(tiny("factorized_encoder"), TINY_INPUTS)
    assert model.no_weight_decay() == {"spatial_encoder.cls_token", "spatial_encoder.pos_embed",
                                       "temporal_encoder.cls_token", "temporal_encoder.pos_embed"}


# ---- the published rows and the K400 recipe -----------------------------------------------------------

def test_published_rows_describe_the_models_we_count():
    """Each row's attention / classifier builds, and our counts sit just under the paper's GFLOPs (scenic
    counts element-wise ops too) with the parameters the paper prints (in millions, truncated)."""
    from experiments.vivit_rows import VIVIT_ROWS

    assert [row["attention"] for row in VIVIT_ROWS] == ["spacetime", "factorized_encoder",
                                                         "factorized_self_attention", "factorized_dot_product"]
    for row in VIVIT_ROWS:
        cfg = ViViTConfig(attention=row["attention"], classifier=row["classifier"])
        profile = FAMILY.profile(meta_model(cfg), K400)
        assert 0 < row["paper_gflops"] - profile["gmacs_per_view"] < 0.01 * row["paper_gflops"], row["label"]
        assert abs(profile["params_total"] / 1e6 - row["paper_params_m"]) < 0.1, row["label"]


def test_k400_vivit_experiment_composes_to_a_valid_model(tmp_path):
    from hydra import compose, initialize_config_dir

    import mtv.runner  # noqa: F401  (registers the families' schemas in Hydra's ConfigStore)

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=["experiment=k400_vivit", "dataset.root=/data/k400"])
    model = OmegaConf.to_object(cfg.model)
    assert isinstance(model, ViViTConfig) and (model.variant, model.attention) == ("B/2", "spacetime")
    assert (cfg.data.num_frames, cfg.data.stride, cfg.optim.lr, cfg.trainer.max_epochs) == (32, 2, 0.1, 30)
    FAMILY.validate(model, ModelInputs(cfg.dataset.num_classes, cfg.data.num_frames, (224, 224)))


@pytest.mark.parametrize("attention, classifier", [("factorized_encoder", "token"),
                                                   ("factorized_self_attention", "gap")])
def test_activation_checkpointing_gives_the_same_gradients(attention, classifier, monkeypatch):
    """The training module sets `model.grad_checkpointing = True` (train.activation_checkpointing)."""
    model = FAMILY.build(tiny(attention, classifier), TINY_INPUTS).train()
    torch.nn.init.normal_(model.head.weight)
    video = torch.rand(2, 3, 4, 16, 16) * 2 - 1
    encoder = model.spatial_encoder if attention == "factorized_encoder" else model.encoder
    calls = []
    fc1 = encoder.blocks[0].mlp.fc1
    forward = fc1.forward
    monkeypatch.setattr(fc1, "forward", lambda x: calls.append(1) or forward(x))  # module hooks skip recompute
    grads = []
    for enabled in (False, True):
        model.grad_checkpointing = enabled
        calls.clear()
        model.zero_grad()
        model(video).square().sum().backward()
        assert len(calls) == (2 if enabled else 1)  # recomputed in backward when checkpointing
        grads.append({name: p.grad.clone() for name, p in model.named_parameters()})
    for name, grad in grads[0].items():
        torch.testing.assert_close(grads[1][name], grad, msg=name)
