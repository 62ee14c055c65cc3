"""`results.json` of a run directory (written by rank 0), the config tree printed at the start and the
one-screen summary printed at the end.

results.json is what the table builder reads: status (running | completed | failed, with the error),
metrics, params and GMACs per view, views, fusion, classes, wall time, devices, dataset sizes and
unreadable videos. It is written at the start (status running, so a killed job is visible) and at the end.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import rich
import rich.syntax
import rich.tree
from omegaconf import DictConfig, OmegaConf

RESULTS = "results.json"


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write atomically (temp file + rename): readers never see half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str))
    os.replace(tmp, path)


def write_results(run_dir: Path, record: dict[str, Any]) -> None:
    write_json(Path(run_dir) / RESULTS, record)


def read_results(run_dir: Path) -> dict[str, Any] | None:
    path = Path(run_dir) / RESULTS
    return json.loads(path.read_text()) if path.exists() else None


def print_config_tree(cfg: DictConfig, saved_to: Path) -> None:
    """The resolved config as a tree, one branch per top-level section (lightning-hydra-template style)."""
    print(f"config (saved to {saved_to})", flush=True)  # not wrapped: the path stays one line
    tree = rich.tree.Tree("config")
    for section, node in cfg.items():
        text = OmegaConf.to_yaml(node) if isinstance(node, DictConfig) else str(node)
        tree.add(str(section)).add(rich.syntax.Syntax(text.rstrip(), "yaml"))
    rich.print(tree)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def summary(record: dict[str, Any]) -> str:
    """A short, fixed-layout summary of one run for the terminal."""
    fusion = record.get("fusion")
    model = f"{record.get('model')}  {record.get('variant') or ''}"
    if fusion:
        model += f"  fusion {fusion.get('type')} {fusion.get('layers', '')}"
    devices = record.get("devices")
    if record.get("task") == "profile":  # nothing ran: shapes only
        devices = "none: counted on the meta device (no data, no weights)"
    lines = [
        "=" * 72,
        f"{record.get('task', '?')} {record['status'].upper()}  {record.get('run_name', '')}",
        f"  dir        {record.get('output_dir')}",
        f"  model      {model.rstrip()}",
        f"  size       {_fmt(record.get('params_m'))} M params, {_fmt(record.get('gmacs_per_view'))} GMACs per view",
        f"  data       {record.get('dataset', {}).get('name')}  {record.get('num_classes')} classes  "
        f"sizes {record.get('dataset_sizes')}  unreadable {record.get('unreadable')}",
        f"  devices    {devices}",
        f"  wall time  {_fmt(record.get('wall_time_s'))} s",
    ]
    metrics = record.get("metrics") or {}
    shown = [k for k in sorted(metrics) if k.startswith(("test/", "val/"))][:12]
    if shown:
        lines.append("  metrics    " + "  ".join(f"{k}={_fmt(metrics[k])}" for k in shown[:4]))
        for i in range(4, len(shown), 4):
            lines.append("             " + "  ".join(f"{k}={_fmt(metrics[k])}" for k in shown[i : i + 4]))
    if record.get("error"):
        lines.append("  error      " + str(record["error"]).strip().splitlines()[-1])
    lines.append("=" * 72)
    return "\n".join(lines)
