"""Paper-style table of a sweep, from its run directories alone (no W&B needed).

    python -m experiments.table SWEEP_DIR

Reads every `<SWEEP_DIR>/*/results.json`, prints a Markdown table (one row per swept setting: GMACs per
view, params (M), top-1, top-5, the paper-size GMACs and the paper's top-1 where known, status) and
writes `table.md`, `table.csv` and `top1_vs_gmacs.png` into SWEEP_DIR. Rows of a Table 1 sweep come in
the paper's order (experiments/ablations.py); a row that has not run yet is listed as missing, a failed
one keeps its place with its status.

A sweep that did not run at the paper's size (Kinetics-400, 32 frames of 224x224), e.g. `debug=smoke`,
gets a caveat under the table and on the plot, and the paper's points go in a panel of their own, at the
paper-size GMACs: a smoke model's GMACs are thousands of times smaller.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from experiments.ablations import TABLES, Row

COLUMNS = ("setting", "GMACs/view", "params (M)", "top-1", "top-5", "paper GMACs/view", "paper top-1", "status")
PAPER_INPUT = ("kinetics400", 32, 224)  # dataset, frames, crop of Table 1


@dataclass
class Line:
    """One table row."""

    setting: str
    gmacs: float | None
    params_m: float | None
    top1: float | None
    top5: float | None
    paper_gmacs: float | None
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
                num(self.paper_gmacs), num(self.paper_top1), self.status]


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


def _line(record: dict[str, Any], setting: str, row: Row | None) -> Line:
    metrics = record.get("metrics") or {}
    return Line(
        setting=setting,
        gmacs=record.get("gmacs_per_view"),
        params_m=record.get("params_m"),
        top1=_percent(metrics, "test/top1"),
        top5=_percent(metrics, "test/top5"),
        paper_gmacs=row.paper_gmacs if row else None,
        paper_top1=row.paper_top1 if row else None,
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
                lines.append(Line(row.label, None, None, None, None, row.paper_gmacs, row.paper_top1, "missing", ""))
            else:
                lines.append(_line(record, row.label, row))
        return table.title, lines
    title = runs[0].get("experiment", "sweep") if runs else "sweep"
    return str(title), [_line(r, r.get("run_name") or Path(r.get("output_dir", "")).name, None) for r in runs]


def scale_note(runs: list[dict[str, Any]]) -> str | None:
    """The caveat for a sweep not run at the paper's size, from what its results.json files record."""
    done = [r for r in runs if r.get("status") == "completed" and r.get("dataset")]
    if not done:
        return None
    d, classes = done[0]["dataset"], done[0].get("num_classes")
    crop = d.get("crop_size")
    crop = crop if isinstance(crop, int) else max(crop or [0])
    if (d.get("name"), d.get("num_frames"), crop) == PAPER_INPUT:
        return None
    chance = f", chance top-1 {100 / classes:.0f} %" if classes else ""
    return (f"Not the paper's setting: {d.get('name')} data ({classes} classes{chance}), {d.get('num_frames')} "
            f"frames of {crop}x{crop}; the paper's columns are Kinetics-400 at 32x224x224 and do not compare.")


def markdown(title: str, lines: list[Line], note: str | None = None) -> str:
    rows = [f"### {title}", "", "| " + " | ".join(COLUMNS) + " |",
            "| " + " | ".join(["---"] + ["---:"] * (len(COLUMNS) - 2) + ["---"]) + " |"]
    rows += ["| " + " | ".join(line.cells()) + " |" for line in lines]
    rows += ["", "paper GMACs/view: the row's cost at 32x224x224 (scenic's count, see experiments/ablations.py); "
                 "–: not known (the paper's other Table 1 numbers are not in the reference material)."]
    if note:
        rows += ["", f"**{note}**"]
    return "\n".join(rows) + "\n"


def write_csv(path: Path, lines: list[Line]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*COLUMNS, "run_dir"])
        for line in lines:
            writer.writerow([line.setting, line.gmacs, line.params_m, line.top1, line.top5, line.paper_gmacs,
                             line.paper_top1, line.status, line.run_dir])


def mac_unit(values: list[float]) -> tuple[float, str]:
    """(factor, name) that puts the largest count between 1 and 1000: smoke models have kilo/mega MACs."""
    largest = max(values, default=1.0)
    for factor, name in ((1.0, "GMACs"), (1e3, "MMACs"), (1e6, "kMACs")):
        if largest * factor >= 1:
            return factor, name
    return 1e9, "MACs"


def tick_label(value: float, _position: int | None = None) -> str:
    """Tick text: three significant digits at most, never an offset or exponent (readable at any scale
    once mac_unit has chosen the unit)."""
    return f"{value:.3g}"


def _panel(ax: Any, points: list[tuple[str, float, float]], unit: str, marker: str, label: str) -> None:
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    ax.scatter([p[1] for p in points], [p[2] for p in points], marker=marker, label=label, zorder=3)
    for setting, x, y in points:
        ax.annotate(setting, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.margins(x=0.15, y=0.12)  # room for the point labels
    ax.xaxis.set_major_locator(MaxNLocator(nbins=4))
    ax.xaxis.set_major_formatter(FuncFormatter(tick_label))
    ax.set_xlabel(f"{unit} per view")
    ax.set_ylabel("top-1 (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)


def figure(title: str, lines: list[Line], note: str | None = None) -> Any:
    """Top-1 against MACs per view: this sweep's completed runs at their own count and, in a second
    panel, the paper's top-1 at the paper-size count (the two scales differ by up to 10^5 at smoke size)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ours = [line for line in lines if line.gmacs is not None and line.top1 is not None]
    paper = [line for line in lines if line.paper_gmacs is not None and line.paper_top1 is not None]
    fig, axes = plt.subplots(1, 2 if paper else 1, figsize=(11 if paper else 6.4, 4.6), squeeze=False)
    factor, unit = mac_unit([line.gmacs for line in ours])
    _panel(axes[0, 0], [(l.setting, l.gmacs * factor, l.top1) for l in ours], unit, "o", "this sweep")
    axes[0, 0].set_title("this sweep", fontsize=9)
    if paper:
        _panel(axes[0, 1], [(l.setting, l.paper_gmacs, l.paper_top1) for l in paper], "GMACs", "x",
               "paper (Kinetics-400, 32x224x224)")
        axes[0, 1].set_title("paper", fontsize=9)
    fig.suptitle(title, fontsize=10)
    if note:
        fig.text(0.5, 0.01, note, ha="center", va="bottom", fontsize=7, color="darkred", wrap=True)
    fig.tight_layout(rect=(0, 0.07 if note else 0, 1, 1))
    return fig


def plot(path: Path, title: str, lines: list[Line], note: str | None = None) -> None:
    import matplotlib.pyplot as plt

    fig = figure(title, lines, note)
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
    note = scale_note(runs)
    text = markdown(title, lines, note)
    print(text)
    (args.sweep_dir / "table.md").write_text(text)
    write_csv(args.sweep_dir / "table.csv", lines)
    plot(args.sweep_dir / "top1_vs_gmacs.png", title, lines, note)
    print(f"wrote {args.sweep_dir / 'table.md'}, table.csv and top1_vs_gmacs.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
