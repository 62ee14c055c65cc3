"""Issue 13 item 5: the ablation table and plot stay readable and honest at every scale."""

from __future__ import annotations

import pytest

from experiments.ablations import TABLES
from experiments.table import build_lines, figure, mac_unit, markdown, scale_note, tick_label


def _runs(table: str, gmacs: list[float], dataset: dict) -> list[dict]:
    rows = TABLES[table].rows
    classes = 4 if dataset["name"] == "synthetic" else 400
    return [{"ablation": {"table": table, "row": row.name}, "status": "completed", "gmacs_per_view": g,
             "params_m": 0.1, "num_classes": classes, "dataset": dataset,
             "metrics": {"test/top1": 0.25 + 0.01 * i, "test/top5": 1.0}}
            for i, (row, g) in enumerate(zip(rows, gmacs))]


SMOKE = {"name": "synthetic", "num_frames": 16, "crop_size": 32}
PAPER = {"name": "kinetics400", "num_frames": 32, "crop_size": 224}
# Table 1c at smoke size: GMACs that differ in the 4th significant digit (what ran together before)
SMOKE_GMACS = [0.0021347, 0.0010612, 0.0010894, 0.0010655, 0.0011205]


def _xtick_boxes(ax):
    labels = [t for t in ax.get_xticklabels() if t.get_visible() and t.get_text()]
    renderer = ax.figure.canvas.get_renderer()
    left, right = ax.get_window_extent(renderer).x0, ax.get_window_extent(renderer).x1
    inside = [t for t in labels if left - 1 <= t.get_window_extent(renderer).x0 + 1 and
              t.get_window_extent(renderer).x1 - 1 <= right + 1]
    return inside, [t.get_window_extent(renderer) for t in inside]


@pytest.mark.parametrize(("gmacs", "dataset"), [(SMOKE_GMACS, SMOKE), ([369.2, 369.2, 370.0, 369.6, 376.5], PAPER)])
def test_tick_labels_are_short_and_do_not_overlap(gmacs: list[float], dataset: dict) -> None:
    runs = _runs("table1c_fusion", gmacs, dataset)
    title, lines = build_lines(runs)
    fig = figure(title, lines, scale_note(runs))
    fig.canvas.draw()
    for ax in fig.axes:
        labels, boxes = _xtick_boxes(ax)
        assert len(labels) >= 2
        assert all(len(t.get_text()) <= 5 for t in labels), [t.get_text() for t in labels]
        assert ax.xaxis.get_offset_text().get_text() == ""  # no "1e-3" / "+3.69e2" offset to read
        ordered = sorted(boxes, key=lambda b: b.x0)
        assert all(a.x1 < b.x0 for a, b in zip(ordered, ordered[1:])), "x tick labels overlap"


def test_smoke_runs_plot_in_their_own_unit_and_the_paper_at_paper_gmacs() -> None:
    assert mac_unit(SMOKE_GMACS) == (1e3, "MMACs") and mac_unit([376.5]) == (1.0, "GMACs")
    assert tick_label(1.0612) == "1.06" and tick_label(0.5) == "0.5" and tick_label(376.5) == "376"
    runs = _runs("table1c_fusion", SMOKE_GMACS, SMOKE)
    title, lines = build_lines(runs)
    fig = figure(title, lines, scale_note(runs))
    ours, paper = fig.axes
    assert ours.get_xlabel() == "MMACs per view" and paper.get_xlabel() == "GMACs per view"
    xs = sorted(float(x) for x, _ in paper.collections[0].get_offsets())
    assert xs == [369.2, 376.5]  # late fusion and CVA, at the paper-size count, not at ours
    assert ours.get_xlim()[1] < 10  # the paper's points are not squeezed onto the smoke axis
    assert any("Not the paper's setting" in t.get_text() for t in fig.texts)


def test_table_states_scale_and_paper_columns() -> None:
    smoke = _runs("table1e_num_views", [0.001, 0.0012, 0.0014], SMOKE)
    title, lines = build_lines(smoke)
    text = markdown(title, lines, scale_note(smoke))
    assert "Not the paper's setting: synthetic data (4 classes, chance top-1 25 %), 16 frames of 32x32" in text
    assert "| B/4 | 0.001 | 0.1 | 25.0 | 100.0 | 144.6 | 78.3 | completed |" in text
    assert scale_note(_runs("table1e_num_views", [144.6, 157.1, 190.6], PAPER)) is None
    for table in TABLES.values():  # the paper's point of every row with a paper top-1 can be drawn
        assert all(row.paper_gmacs is not None for row in table.rows if row.paper_top1 is not None), table.name
