"""Multi-view evaluation: per-video averaging of raw logits, and exact per-video counts in a real
2-process DDP run (Lightning, gloo, CPU) where the sampler pads the test set with duplicates."""
from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
import torch.distributed as dist
from torch import nn

from datamodules import build_datamodule
from mtv.training.multiview import MultiViewAggregator
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
        result = self.aggregator.compute()  # this rank's videos
        seen = torch.tensor(self.clips_seen)
        dist.all_reduce(seen)
        torch.save({**result, "clips_seen": int(seen), "world_size": self.trainer.world_size},
                   f"{self.result_path}.rank{self.global_rank}")


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

    shards = [torch.load(f"{result_path}.rank{rank}", weights_only=True) for rank in range(2)]
    assert [shard["video_index"].tolist() for shard in shards] == [[0, 2, 4], [1, 3]]  # video % ranks owns
    assert shards[0]["num_videos"] == shards[1]["num_videos"] and shards[0]["clips_seen"] == shards[1]["clips_seen"]
    order = torch.cat([shard["video_index"] for shard in shards]).argsort()
    ddp = {**shards[0], **{key: torch.cat([shard[key] for shard in shards])[order]
                           for key in ("logits", "labels", "video_index")}}
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


# ---- each video's clips go to one rank: bytes received per rank, exact results -----------------------------
WORLD, VIEWS, CLASSES = 3, 12, 50
VIDEOS_PER_RANK = 20


def _rank_videos(rank: int) -> list[int]:
    """Contiguous blocks (as a sampler without interleaving gives): video ids skip v % 3 == 2, so rank 2 owns
    none; the last rank also sees a padded repeat of video 0."""
    ids = [v for v in range(3 * WORLD * VIDEOS_PER_RANK) if v % WORLD != 2]
    mine = ids[rank * VIDEOS_PER_RANK:(rank + 1) * VIDEOS_PER_RANK]
    return mine + [0] if rank == WORLD - 1 else mine


def _clips(rank: int, video: int) -> tuple[torch.Tensor, ...]:
    """All views of one video as one update: logits that differ per view and per rank (so the padded repeat
    would change the result if it were counted), label video % 7, video 5 unreadable."""
    logits = torch.randn(VIEWS, CLASSES, generator=torch.Generator().manual_seed(video)) + 100 * rank
    return (logits, torch.full((VIEWS,), video % 7), torch.full((VIEWS,), video),
            torch.full((VIEWS,), video != 5), torch.arange(VIEWS))


def _count_received(counter: dict[str, int]) -> None:
    """Wrap torch.distributed's receiving collectives so that the bytes they write on this rank are counted."""
    def nbytes(value) -> int:
        if isinstance(value, torch.Tensor):
            return value.numel() * value.element_size()
        return sum(nbytes(v) for v in value) if isinstance(value, (list, tuple)) else 0

    for name in ("all_gather", "all_gather_into_tensor", "all_to_all", "all_to_all_single", "gather", "scatter",
                 "broadcast", "all_reduce", "reduce", "recv", "irecv", "all_gather_object", "broadcast_object_list"):
        real = getattr(dist, name)

        def counted(output, *args, _real=real, **kwargs):
            counter["bytes"] += nbytes(output)
            return _real(output, *args, **kwargs)

        setattr(dist, name, counted)


def _exchange_worker(rank: int, port: int, out_dir: str) -> None:
    import os

    from mtv.training.metrics import ClassificationMetrics

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    aggregator = MultiViewAggregator()
    for video in _rank_videos(rank):
        aggregator.update(*_clips(rank, video))
    in_place = MultiViewAggregator()  # DistributedSampler's order: every clip on its owner already
    for video in range(rank, 30, WORLD):
        in_place.update(*_clips(rank, video))
    counter = {"bytes": 0}
    _count_received(counter)
    result = aggregator.compute()
    metrics = ClassificationMetrics(CLASSES)  # states summed over ranks, as the LightningModule does
    if len(result["labels"]):
        metrics.update(result["logits"], result["labels"])
    received = counter["bytes"]
    metric_values = metrics.compute()
    before_in_place = counter["bytes"]
    in_place_result = in_place.compute()
    torch.save({**result, "received_bytes": received, "metrics": metric_values, "in_place": in_place_result,
                "in_place_received_bytes": counter["bytes"] - before_in_place}, f"{out_dir}/rank{rank}.pt")
    dist.destroy_process_group()


@pytest.mark.slow
def test_each_rank_receives_only_the_clips_of_its_own_videos_and_results_are_exact(tmp_path):
    import socket

    import torch.multiprocessing as mp

    from mtv.training.metrics import ClassificationMetrics

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_exchange_worker, args=(port, str(tmp_path)), nprocs=WORLD)
    shards = [torch.load(tmp_path / f"rank{rank}.pt", weights_only=True) for rank in range(WORLD)]

    single = MultiViewAggregator()  # one process, clips in rank order: what a gather of everything gives
    for rank in range(WORLD):
        for video in _rank_videos(rank):
            single.update(*_clips(rank, video))
    expected = single.compute()
    order = torch.cat([s["video_index"] for s in shards]).argsort()
    for key in ("video_index", "logits", "labels"):
        assert torch.equal(torch.cat([s[key] for s in shards])[order], expected[key]), key
    assert [s["video_index"].tolist() == [v for v in expected["video_index"].tolist() if v % WORLD == r]
            for r, s in enumerate(shards)] == [True] * WORLD
    assert len(shards[2]["video_index"]) == 0  # rank 2 owns no video
    for shard in shards:
        assert (shard["num_videos"], shard["num_unreadable"]) == (expected["num_videos"], expected["num_unreadable"])
    reference = ClassificationMetrics(CLASSES)
    reference.update(expected["logits"], expected["labels"])
    assert all(shard["metrics"] == reference.compute() for shard in shards)

    row_bytes = CLASSES * 4 + 4 * 8  # float32 logits + (video, view, valid, label) as int64
    for rank, shard in enumerate(shards):
        owned_clips = sum(VIEWS for r in range(WORLD) for v in _rank_videos(r) if v % WORLD == rank)
        assert shard["received_bytes"] <= owned_clips * row_bytes + 4096, rank  # + counts and sizes
    all_clips = sum(len(_rank_videos(r)) * VIEWS for r in range(WORLD))
    assert shards[2]["received_bytes"] < 0.01 * all_clips * row_bytes  # a gather would bring every clip

    for rank, shard in enumerate(shards):  # nothing to move: only sizes and counts cross ranks
        in_place = MultiViewAggregator()
        for video in range(rank, 30, WORLD):
            in_place.update(*_clips(rank, video))
        assert torch.equal(shard["in_place"]["logits"], in_place.compute()["logits"])
        assert shard["in_place"]["num_videos"] == 30 and shard["in_place_received_bytes"] < 200
