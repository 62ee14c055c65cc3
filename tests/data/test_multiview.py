"""Multi-view evaluation: per-video averaging of raw logits, and exact per-video counts in a real
2-process DDP run (Lightning, gloo, CPU) where the sampler pads the test set with duplicates."""
from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
import torch.distributed as dist
from torch import nn

from datamodules import MultiViewAggregator, build_datamodule
from videos import write_empty, write_video


def test_average_of_raw_logits_per_video_with_duplicates_removed():
    agg = MultiViewAggregator()
    logits = torch.tensor([[1.0, 0.0], [3.0, 2.0], [0.0, 5.0], [9.0, 9.0]])
    agg.update(logits, torch.tensor([1, 1, 0, 0]), torch.tensor([4, 4, 2, 2]), torch.tensor([True] * 4),
               torch.tensor([0, 1, 0, 1]))
    # a padded repeat of video 4 (same views) and an unreadable video 7
    agg.update(torch.tensor([[100.0, 100.0], [0.0, 0.0], [0.0, 0.0]]), torch.tensor([1, 0, 0]),
               torch.tensor([4, 7, 7]), torch.tensor([True, False, False]), torch.tensor([1, 0, 1]))
    out = agg.compute()
    assert out["video_index"].tolist() == [2, 4]
    assert torch.equal(out["logits"], torch.tensor([[4.5, 7.0], [2.0, 1.0]]))
    assert out["labels"].tolist() == [0, 1]
    assert (out["num_videos"], out["num_unreadable"]) == (3, 1)


def test_view_index_defaults_to_position_within_the_batch():
    agg = MultiViewAggregator()
    agg.update(torch.tensor([[2.0], [4.0], [6.0]]), torch.tensor([0, 0, 0]), torch.tensor([3, 3, 3]),
               torch.tensor([True] * 3))
    agg.update(torch.tensor([[2.0], [4.0], [6.0]]), torch.tensor([0, 0, 0]), torch.tensor([3, 3, 3]),
               torch.tensor([True] * 3))  # the same three views again (a padded duplicate)
    out = agg.compute()
    assert out["logits"].tolist() == [[4.0]] and out["num_videos"] == 1


def test_multi_head_labels_are_kept_per_video():
    agg = MultiViewAggregator()
    agg.update(torch.zeros(2, 5), torch.tensor([[2, 1], [2, 1]]), torch.tensor([0, 0]), torch.tensor([True, True]))
    assert agg.compute()["labels"].tolist() == [[2, 1]]


class ViewMeanModule(L.LightningModule):
    """Logits = (m, -m) with m the mean of each clip: deterministic, different for every view."""

    def __init__(self, result_path: str) -> None:
        super().__init__()
        self.layer = nn.Linear(1, 2)
        with torch.no_grad():
            self.layer.weight.copy_(torch.tensor([[1.0], [-1.0]]))
            self.layer.bias.zero_()
        self.aggregator = MultiViewAggregator()
        self.result_path = result_path
        self.clips_seen = 0

    def test_step(self, batch, batch_idx):
        logits = self.layer(batch["video"].mean(dim=(1, 2, 3, 4))[:, None])
        self.aggregator.update(logits, batch["label"], batch["video_index"], batch["valid"], batch["view_index"])
        self.clips_seen += len(logits)

    def on_test_epoch_end(self):
        result = self.aggregator.compute()
        seen = torch.tensor(self.clips_seen)
        dist.all_reduce(seen)
        if self.global_rank == 0:
            torch.save({**result, "clips_seen": int(seen), "world_size": self.trainer.world_size}, self.result_path)


def _aggregate_without_ddp(dm) -> dict:
    module = ViewMeanModule("unused")
    for batch in dm.test_dataloader():
        module.test_step(batch, 0)
    return module.aggregator.compute()


@pytest.mark.slow
def test_ddp_two_processes_count_every_video_exactly_once(tmp_path, make_cfg):
    root = tmp_path / "videos"
    names = [write_video(root / f"v{i}.mp4", num_frames=10 + i, seed=i).name for i in range(5)]
    names += [write_empty(root / "empty.mp4").name, write_empty(root / "empty2.mp4").name]
    listing = tmp_path / "list.txt"
    listing.write_text("".join(f"{n} {i % 3}\n" for i, n in enumerate(names)))
    cfg = make_cfg("video_list", f"dataset.root={root}", f"dataset.train_list={listing}",
                   f"dataset.val_list={listing}", "dataset.num_classes=3", "data.num_frames=4", "data.stride=2",
                   "data.short_side=32", "data.crop_size=32", "data.test_clips=2", "data.test_crops=3",
                   "data.eval_batch_size=2", "data.num_workers=0")
    dm = build_datamodule(cfg)
    result_path = tmp_path / "result.pt"
    trainer = L.Trainer(accelerator="cpu", devices=2, strategy="ddp_spawn", logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.test(ViewMeanModule(str(result_path)), datamodule=dm)

    ddp = torch.load(result_path)
    assert ddp["world_size"] == 2
    assert ddp["clips_seen"] == 8 * 6  # 7 videos padded to 8 by the sampler: one video seen twice
    assert ddp["num_videos"] == 7 and ddp["num_unreadable"] == 2
    dm.setup("test")
    single = _aggregate_without_ddp(dm)
    assert ddp["video_index"].tolist() == single["video_index"].tolist() == [0, 1, 2, 3, 4]
    assert torch.allclose(ddp["logits"], single["logits"], atol=1e-6)
    assert ddp["labels"].tolist() == [0, 1, 2, 0, 1]
    bad = Path(cfg.paths.output_dir, "bad_videos.txt").read_text()
    assert "empty.mp4" in bad and "empty2.mp4" in bad
