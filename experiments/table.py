"""Paper-style table of a sweep, from its run directories alone (no W&B needed).

    python -m experiments.table SWEEP_DIR

Reads every `<SWEEP_DIR>/*/results.json`, prints a Markdown table (one row per swept setting: GMACs per
view, params (M), top-1, top-5, status, and the paper's top-1 where known) and writes `table.md`,
`table.csv` and `top1_vs_gmacs.png` into SWEEP_DIR. Rows of a Table 1 sweep come in the paper's order
(experiments/ablations.py); a row that has not run yet is listed as missing, a failed one keeps its
place with its status.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from experiments.ablations import TABLES

COLUMNS = ("setting", "GMACs/view", "params (M)", "top-1", "top-5", "paper top-1", "status")


@dataclass
class Line:
    """One table row."""

    setting: str
    gmacs: float | None
    params_m: float | None
    top1: float | None
    top5: float | None
    paper_top1: float | None
    status: str
    run_dir: str

    def cells(self) -> list[str]:
        def num(value: float | None) -> str:
            """One decimal; small numbers (smoke-size models) with two significant digits."""
            if value is None:
                return "–"
            return f"{value:.1f}" if abs(value) >= 1 or value == 0 else f"{value:.2g}"

        return [self.setting, num(self.gmacs), num(self.params_m), num(self.top1), num(self.top5),
                num(self.paper_top1), self.status]


def load_runs(sweep_dir: Path) -> list[dict[str, Any]]:
    """results.json of every job directory of the sweep (sorted by job number)."""
    runs = []
    for path in sorted(sweep_dir.glob("*/results.json"), key=lambda p: (len(p.parent.name), p.parent.name)):
        record = json.loads(path.read_text())
        record.setdefault("output_dir", str(path.parent))
        runs.append(record)
    return runs


def _percent(metrics: dict[str, Any], key: str) -> float | None:
    value = metrics.get(key)
    return None if value is None else 100.0 * float(value)


def _line(record: dict[str, Any], setting: str, paper: float | None) -> Line:
    metrics = record.get("metrics") or {}
    return Line(
        setting=setting,
        gmacs=record.get("gmacs_per_view"),
        params_m=record.get("params_m"),
        top1=_percent(metrics, "test/top1"),
        top5=_percent(metrics, "test/top5"),
        paper_top1=paper,
        status=record.get("status", "?"),
        run_dir=record.get("output_dir", ""),
    )


def build_lines(runs: list[dict[str, Any]]) -> tuple[str, list[Line]]:
    """Title and rows. Table 1 sweeps follow the definition's row order; other sweeps use run names."""
    tables = {(r.get("ablation") or {}).get("table") for r in runs} - {None}
    if len(tables) == 1:
        table = TABLES[tables.pop()]
        by_row = {(r.get("ablation") or {}).get("row"): r for r in runs}
        lines = []
        for row in table.rows:
            record = by_row.get(row.name)
            if record is None:
                lines.append(Line(row.label, None, None, None, None, row.paper_top1, "missing", ""))
            else:
                lines.append(_line(record, row.label, row.paper_top1))
        return table.title, lines
    title = runs[0].get("experiment", "sweep") if runs else "sweep"
    return str(title), [_line(r, r.get("run_name") or Path(r.get("output_dir", "")).name, None) for r in runs]


def markdown(title: str, lines: list[Line]) -> str:
    rows = [f"### {title}", "", "| " + " | ".join(COLUMNS) + " |",
            "| " + " | ".join(["---"] + ["---:"] * (len(COLUMNS) - 2) + ["---"]) + " |"]
    rows += ["| " + " | ".join(line.cells()) + " |" for line in lines]
    return "\n".join(rows) + "\n"


def write_csv(path: Path, lines: list[Line]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*COLUMNS, "run_dir"])
        for line in lines:
            writer.writerow([line.setting, line.gmacs, line.params_m, line.top1, line.top5, line.paper_top1,
                             line.status, line.run_dir])


def plot(path: Path, title: str, lines: list[Line]) -> None:
    """Top-1 against GMACs per view: ours (completed runs) and the paper's where known."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    ours = [line for line in lines if line.gmacs is not None and line.top1 is not None]
    ax.scatter([l.gmacs for l in ours], [l.top1 for l in ours], label="ours", zorder=3)
    for line in ours:
        ax.annotate(line.setting, (line.gmacs, line.top1), textcoords="offset points", xytext=(4, 4), fontsize=8)
    paper = [line for line in lines if line.gmacs is not None and line.paper_top1 is not None]
    if paper:
        ax.scatter([l.gmacs for l in paper], [l.paper_top1 for l in paper], marker="x", label="paper top-1 (at our GMACs)", zorder=3)
    ax.set_xlabel("GMACs per view")
    ax.set_ylabel("top-1 (%)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Paper-style table (Markdown, CSV, plot) of a sweep directory.")
    parser.add_argument("sweep_dir", type=Path)
    args = parser.parse_args(argv)
    runs = load_runs(args.sweep_dir)
    if not runs:
        print(f"error: no */results.json under {args.sweep_dir} (is it a sweep directory?)", file=sys.stderr)
        return 2
    title, lines = build_lines(runs)
    text = markdown(title, lines)
    print(text)
    (args.sweep_dir / "table.md").write_text(text)
    write_csv(args.sweep_dir / "table.csv", lines)
    plot(args.sweep_dir / "top1_vs_gmacs.png", title, lines)
    print(f"wrote {args.sweep_dir / 'table.md'}, table.csv and top1_vs_gmacs.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
