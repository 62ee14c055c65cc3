"""Small pieces without subprocesses: optimiser groups and schedule, resumable sampling, GPU slots,
resume command lines, the table builder."""

from __future__ import annotations

import multiprocessing as mp
import random
import time
from pathlib import Path

import pytest
import torch
import yaml

from experiments.table import build_lines, markdown
from mtv.runner.data import ResumableSampler, SeededDataset
from mtv.runner.gpu_slots import gpu_slot
from mtv.runner.models import model_of
from mtv.runner.resume import expand_resume_argv
from mtv.training.metrics import ClassificationMetrics
from mtv.training.module import VideoClassifier, soft_cross_entropy, step_seed
from mtv.training.optim import OptimConfig, param_groups, warmup_cosine

torch.set_num_threads(1)

TINY = {
    "model": {"name": "mtv", "variant": "B/2+Ti/4", "frame_strides": None, "fusion": {"type": "bottleneck",
              "layers": [1], "bottleneck_tokens": 2}, "global_encoder": {"num_layers": 1, "num_heads": 1,
              "mlp_dim": 8, "hidden_size": 8, "merge": "channel"}, "classifier": "token", "dropout": 0.0,
              "attention_dropout": 0.0, "stochastic_depth": 0.0, "init": {"vit_checkpoints": None},
              "encoder_sizes": {"B": {"hidden_size": 8, "num_heads": 1, "mlp_dim": 8, "num_layers": 2},
                                "Ti": {"hidden_size": 4, "num_heads": 1, "mlp_dim": 8, "num_layers": 2}}},
    "dataset": {"num_classes": 3}, "data": {"num_frames": 4, "crop_size": 16},
}


def test_no_weight_decay_on_norms_biases_embeddings_and_tokens() -> None:
    model = model_of(TINY)
    groups = param_groups(model, weight_decay=0.05, layer_decay=None)
    names = {id(p): n for n, p in model.named_parameters()}
    decayed = {names[id(p)] for g in groups if g["weight_decay"] > 0 for p in g["params"]}
    plain = {names[id(p)] for g in groups if g["weight_decay"] == 0 for p in g["params"]}
    assert decayed and all(model.get_parameter(n).ndim > 1 for n in decayed)
    assert not any(k in n for n in decayed for k in ("pos_embed", "cls", "tokens", "norm", "bias"))
    assert any("pos_embed" in n for n in plain) and any("fusion.tokens" in n for n in plain)
    assert decayed | plain == set(names.values())


def test_layer_decay_scales_grow_towards_the_head() -> None:
    model = model_of(TINY)
    groups = param_groups(model, weight_decay=0.0, layer_decay=0.5)
    scale = {n: g["lr_scale"] for g in groups for n, p in model.named_parameters() if any(p is q for q in g["params"])}
    assert scale["head.weight"] == 1.0
    assert scale["views.0.tokenizer.weight"] == pytest.approx(0.5 ** (model.num_layers_for_lr_decay - 1))
    assert scale["views.0.blocks.0.mlp.fc1.weight"] < scale["global_encoder.blocks.0.mlp.fc1.weight"] < 1.0


def test_warmup_then_cosine() -> None:
    assert warmup_cosine(0, 10, 100) == 0.0
    assert warmup_cosine(5, 10, 100) == pytest.approx(0.5)
    assert warmup_cosine(10, 10, 100) == pytest.approx(1.0)
    assert warmup_cosine(55, 10, 100) == pytest.approx(0.5)
    assert warmup_cosine(100, 10, 100) == pytest.approx(0.0, abs=1e-12)
    assert warmup_cosine(100, 10, 100, min_ratio=0.1) == pytest.approx(0.1)


def test_soft_cross_entropy_matches_torch_and_averages_heads() -> None:
    logits, labels = torch.randn(6, 5), torch.tensor([0, 1, 2, 3, 4, 0])
    targets = torch.nn.functional.one_hot(labels, 5).float() * 0.9 + 0.02
    assert soft_cross_entropy(logits, targets, None) == pytest.approx(
        torch.nn.functional.cross_entropy(logits, labels, label_smoothing=0.1).item(), rel=1e-5)
    heads = {"noun": 3, "verb": 2}
    both = soft_cross_entropy(logits, targets, heads)
    noun = soft_cross_entropy(logits[:, :3], targets[:, :3], None)
    verb = soft_cross_entropy(logits[:, 3:], targets[:, 3:], None)
    assert both == pytest.approx(((noun + verb) / 2).item())


def test_ensemble_members_are_clipped_separately() -> None:
    cfg = {**TINY, "model": {**TINY["model"], "name": "ensemble", "fusion": {"type": "none", "layers": []}}}
    module = VideoClassifier(model_of(cfg), OptimConfig(grad_clip=1.0), num_classes=3)
    for p in module.model.parameters():
        p.grad = torch.ones_like(p)
    module.configure_gradient_clipping(None)
    norms = [torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in m.parameters()])) for m in module.model.members]
    assert len(norms) == 2 and all(n == pytest.approx(1.0, rel=1e-4) for n in norms)


def test_resumable_sampler_skips_exactly_the_consumed_samples() -> None:
    data = list(range(20))
    full = list(ResumableSampler(data, 2, 1, seed=3, drop_last=False))
    resumed = ResumableSampler(data, 2, 1, seed=3, drop_last=False)
    resumed.start = 4
    assert list(resumed) == full[4:] and list(resumed) == full  # only the first pass is partial
    other = ResumableSampler(data, 2, 1, seed=3, drop_last=False)
    other.set_epoch(1)
    assert list(other) != full and {i for _, i in full} | {i for _, i in ResumableSampler(data, 2, 0, 3, False)} == set(data)


class _Augmenting(torch.utils.data.Dataset):
    """Items drawn from the global RNGs, as augmentation does."""

    def __len__(self) -> int:
        return 4

    def __getitem__(self, index: int) -> tuple[float, float]:
        return random.random(), torch.rand(1).item()


def test_seeded_dataset_gives_the_same_augmentation_for_the_same_key() -> None:
    dataset = SeededDataset(_Augmenting(), seed=7)
    first = dataset[(2, 1)]
    random.random(), torch.rand(3)  # anything in between
    assert dataset[(2, 1)] == first and dataset[(3, 1)] != first and dataset[(2, 0)] != first
    assert step_seed(0, 5, 0) != step_seed(0, 6, 0) != step_seed(0, 5, 1)


def _hold(lock_dir: str, hold_s: float, out: "mp.Queue") -> None:
    with gpu_slot(Path(lock_dir), num_gpus=2, poll_s=0.05) as index:
        out.put((index, time.time()))
        time.sleep(hold_s)


def test_gpu_slots_are_exclusive(tmp_path: Path) -> None:
    """Three jobs, two GPUs: two run at once on different GPUs, the third waits for a free one."""
    ctx = mp.get_context("fork")
    out = ctx.Queue()
    procs = [ctx.Process(target=_hold, args=(str(tmp_path), 1.0, out)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    got = sorted((out.get(timeout=5) for _ in range(3)), key=lambda x: x[1])
    assert {got[0][0], got[1][0]} == {0, 1}
    assert got[2][1] - min(got[0][1], got[1][1]) >= 0.95  # started only after one of the first two ended


def test_resume_argv_replays_the_saved_overrides(tmp_path: Path) -> None:
    (tmp_path / ".hydra").mkdir()
    (tmp_path / ".hydra/overrides.yaml").write_text(yaml.safe_dump(["model/variant=B4", "trainer.max_epochs=3", "seed=1"]))
    argv = expand_resume_argv(["run.py", f"resume={tmp_path}", "trainer.max_epochs=5"])
    assert argv == ["run.py", "model/variant=B4", "seed=1", "trainer.max_epochs=5", "resume=true", f"hydra.run.dir={tmp_path}"]
    assert expand_resume_argv(["run.py", "resume=true"]) == ["run.py", "resume=true"]
    with pytest.raises(SystemExit, match="multirun.yaml"):
        expand_resume_argv(["run.py", "-m", f"resume={tmp_path}"])
    (tmp_path / "multirun.yaml").write_text(yaml.safe_dump({"hydra": {"overrides": {"task": ["experiment=k400_mtv_b"]}}}))
    assert expand_resume_argv(["run.py", f"resume={tmp_path}", "-m"]) == [
        "run.py", "-m", "experiment=k400_mtv_b", "resume=true", f"hydra.sweep.dir={tmp_path}"]


def test_resume_replays_only_declared_keys_never_code(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """A planted `.hydra/overrides.yaml` (issue 12 "A run directory is code") cannot instantiate classes,
    swap Hydra's launcher or callbacks, or add keys conf/ does not declare."""
    marker = tmp_path / "pwned"
    planted = ["model/variant=B4", "dataset=video_folder", "dataset.train_dir=clips", "+trainer.max_epochs=2",
               "+callbacks.extra.x._target_=builtins.open", f"+callbacks.extra.x.file={marker}",
               f"callbacks.extra={{x: {{_target_: builtins.open, file: {marker}}}}}", "hydra/launcher=slurm",
               "hydra.callbacks.x._target_=builtins.open", "+new_key=1", "dataset=../../../tmp/evil"]
    (tmp_path / ".hydra").mkdir()
    (tmp_path / ".hydra/overrides.yaml").write_text(yaml.safe_dump(planted))
    argv = expand_resume_argv(["run.py", f"resume={tmp_path}"])
    assert argv == ["run.py", "model/variant=B4", "dataset=video_folder", "dataset.train_dir=clips", "+trainer.max_epochs=2",
                    "resume=true", f"hydra.run.dir={tmp_path}"]
    refused = capsys.readouterr().err
    assert refused.count("not replaying") == len(planted) - 4 and "names a class to instantiate" in refused


def test_table_keeps_the_paper_row_order_and_marks_missing_rows() -> None:
    runs = [
        {"ablation": {"table": "table1e_num_views", "row": "B4_Ti8"}, "status": "completed", "gmacs_per_view": 2.0,
         "params_m": 3.0, "metrics": {"test/top1": 0.5, "test/top5": 0.9}},
        {"ablation": {"table": "table1e_num_views", "row": "B4"}, "status": "failed", "error": "x"},
    ]
    title, lines = build_lines(runs)
    assert title.startswith("Table 1e") and [l.setting for l in lines] == ["B/4", "B/4+Ti/8", "B/4+S/8+Ti/16"]
    assert [l.status for l in lines] == ["failed", "completed", "missing"]
    text = markdown(title, lines)
    assert "| B/4+Ti/8 | 2.0 | 3.0 | 50.0 | 90.0 | 157.1 | 80.8 | completed |" in text


def test_multi_head_metrics_give_verb_noun_and_action_accuracy() -> None:
    heads = {"noun": 3, "verb": 2}
    metrics = ClassificationMetrics(5, heads)
    logits = torch.tensor([[9.0, 0, 0, 9, 0], [9, 0, 0, 0, 9], [0, 9, 0, 9, 0], [0, 0, 9, 0, 9]])
    labels = torch.tensor([[0, 0], [0, 0], [0, 0], [2, 1]])  # (noun, verb)
    metrics.update(logits, labels)
    values = metrics.compute()
    assert values["noun_top1"] == pytest.approx(0.75) and values["verb_top1"] == pytest.approx(0.75)
    assert values["action_top1"] == pytest.approx(0.5) == values["top1"]
