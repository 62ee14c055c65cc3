"""benchmarks/throughput.py runs end to end on a CPU with a tiny model (no speed thresholds: CI machines vary)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from benchmark_scripts import load_script

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "throughput.py"
TINY = ["--config", "tiny", "--device", "cpu", "--threads", "1", "--steps", "2", "--warmup", "1"]


def run(*args: str) -> list[dict[str, str]]:
    """Run the script, return the rows of its Markdown table as {column: cell}."""
    done = subprocess.run([sys.executable, str(SCRIPT), *TINY, *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [line for line in done.stdout.splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    return [dict(zip(header, (cell.strip() for cell in line.strip("|").split("|")))) for line in lines[2:]]


def throughput() -> ModuleType:
    return load_script("throughput")


def test_tiny_config_reports_train_and_inference_rows() -> None:
    rows = run()
    assert [row["mode"] for row in rows] == ["train", "infer"]
    for row in rows:
        assert float(row["clips/s"]) > 0
        assert float(row["step ms"]) > 0
        assert float(row["GMACs/clip"]) > 0
        assert row["MFU"] == "n/a"  # no peak for a CPU
        assert "64: " in row["SDPA (head dim: backend)"]  # Ti views have head dim 64


def test_options_are_applied_and_written_to_json(tmp_path: Path) -> None:
    out = tmp_path / "rows.json"
    rows = run("--modes", "train", "--precision", "fp32", "--fused-optimizer", "--grad-checkpointing",
               "--channels-last-input-uint8", "--optimizer", "adamw", "--peak-tflops", "1", "--json", str(out))
    assert len(rows) == 1 and float(rows[0]["clips/s"]) > 0
    assert rows[0]["precision"] == "fp32"
    assert rows[0]["options"] == "adamw-fused,ckpt,uint8-in"
    assert rows[0]["MFU"].endswith("%")  # --peak-tflops gives MFU even on a CPU
    saved = json.loads(out.read_text())
    assert saved["rows"][0]["clips_per_s"] > 0 and saved["rows"][0]["mode"] == "train"


@pytest.mark.slow
def test_decoding_generated_files_through_the_datamodule(tmp_path: Path) -> None:
    rows = run("--modes", "infer", "--data", "synthetic-files", "--videos", "4", "--workers", "1",
               "--cache-dir", str(tmp_path))
    assert len(rows) == 1 and float(rows[0]["clips/s"]) > 0
    assert "synthetic-files" in rows[0]["options"]
    assert list(tmp_path.glob("synthetic-*/train/*.mp4"))  # real files were generated and read


@pytest.mark.parametrize(
    ("device_name", "peak"),
    [("NVIDIA H100 80GB HBM3", 989.4), ("NVIDIA H100 PCIe", 756.0), ("NVIDIA H200", 989.4),
     ("NVIDIA A100-SXM4-80GB", 312.0), ("NVIDIA H100 NVL", None), ("Tesla T4", None)],
)
def test_peak_table_matches_device_names(device_name: str, peak: float | None) -> None:
    assert throughput().known_peak_tflops(device_name) == peak


def test_unknown_config_without_variant_is_refused() -> None:
    with pytest.raises(SystemExit):
        throughput().parse_args(["--config", "nonexistent"])
