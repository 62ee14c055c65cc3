"""Table 1 of the MTV paper (Kinetics-400, 32x224, CVA at layers (5, 11) unless a row says otherwise):
one definition per sub-table, the single source for conf/experiment/table1*.yaml, conf/row/** and the
table builder (`python -m experiments.table`).

A row is a set of Hydra overrides: group choices (`view`, `fusion`, `model`) and plain values
(`model.fusion.layers`). `paper_top1` is the paper's published top-1 where we know it; the same model
(B/2+S/4+Ti/8 with CVA at (5, 11)) appears in several sub-tables and carries its number in each. The
paper's other Table 1 numbers are not in the reference material (mtv_spec.md 6.3: "not found").

`paper_gmacs` is the row's cost at the paper's size (Kinetics-400, 32x224x224, one view), where the plot
puts the paper's point: scenic's own count (mtv_spec.md 2.11, "checked by running scenic's code"), or,
for the two rows with a paper top-1 that scenic's table lacks, `python run.py task=profile scale=paper`
of the same architecture (marked `PROFILED`; it counts 0.5 % below scenic on the rows both have).
"""

from __future__ import annotations

from dataclasses import dataclass, field

GROUPS = ("model", "model/variant", "model/fusion")  # override keys that choose a config file rather than a value

MTV_B_TOP1 = 81.8  # B/2+S/4+Ti/8, CVA at (5, 11)
THREE_VIEW_TOP1 = 81.1  # B/4+S/8+Ti/16, CVA at (5, 11)
MTV_B_GMACS = 376.5  # scenic's count of B/2+S/4+Ti/8, CVA at (5, 11)
THREE_VIEW_GMACS = 190.6  # PROFILED: B/4+S/8+Ti/16, CVA at (5, 11)


@dataclass(frozen=True)
class Row:
    """One row of a sub-table: a config-safe name, the label printed in the table, its overrides."""

    name: str
    label: str
    overrides: dict[str, object] = field(default_factory=dict)
    paper_top1: float | None = None
    paper_gmacs: float | None = None


@dataclass(frozen=True)
class Table:
    """One sub-table of Table 1; `name` is the experiment config (conf/experiment/<name>.yaml)."""

    name: str
    title: str
    column: str  # header of the row-label column
    rows: tuple[Row, ...]

    def row(self, name: str) -> Row:
        for row in self.rows:
            if row.name == name:
                return row
        raise KeyError(f"{self.name} has no row {name!r}; rows: {', '.join(r.name for r in self.rows)}")


TABLES: dict[str, Table] = {
    t.name: t
    for t in (
        Table(
            "table1a_view_assignment",
            "Table 1a: assigning encoders to views",
            "views",
            (
                Row("B2_S4_Ti8", "B/2+S/4+Ti/8", {"model/variant": "B2_S4_Ti8"}, MTV_B_TOP1, MTV_B_GMACS),
                Row("B8_S4_Ti2", "B/8+S/4+Ti/2", {"model/variant": "B8_S4_Ti2"}, 78.5, 156.3),
                Row("B4_S8_Ti16", "B/4+S/8+Ti/16", {"model/variant": "B4_S8_Ti16"}, THREE_VIEW_TOP1, THREE_VIEW_GMACS),
            ),
        ),
        Table(
            "table1b_same_encoder",
            "Table 1b: the same encoder for every view",
            "views",
            (
                Row("B2_B4_B8", "B/2+B/4+B/8", {"model/variant": "B2_B4_B8"}, None, 571.0),
                Row("B2_S4_Ti8", "B/2+S/4+Ti/8", {"model/variant": "B2_S4_Ti8"}, MTV_B_TOP1, MTV_B_GMACS),
            ),
        ),
        Table(
            "table1c_fusion",
            "Table 1c: fusion method (B/2+S/4+Ti/8)",
            "fusion",
            (
                Row("ensemble", "ensemble", {"model": "ensemble", "model/variant": "B2_S4_Ti8", "model/fusion": "none"}),
                Row("late_fusion", "late fusion", {"model/variant": "B2_S4_Ti8", "model/fusion": "none"}, 80.6, 369.2),
                Row("mlp", "MLP", {"model/variant": "B2_S4_Ti8", "model/fusion": "mlp"}),
                Row("bottleneck", "bottleneck (4 tokens)", {"model/variant": "B2_S4_Ti8", "model/fusion": "bottleneck"},
                    None, 369.6),
                Row("cva", "CVA", {"model/variant": "B2_S4_Ti8", "model/fusion": "cva"}, MTV_B_TOP1, MTV_B_GMACS),
            ),
        ),
        Table(
            "table1d_slowfast",
            "Table 1d: SlowFast-style views vs MTV",
            "model",
            (
                Row("slowfast", "SlowFast (B slow x4, Ti fast, CVA)", {"model": "slowfast", "model/variant": "slowfast"}),
                Row("mtv", "MTV B/2+S/4+Ti/8", {"model/variant": "B2_S4_Ti8"}, MTV_B_TOP1, MTV_B_GMACS),
            ),
        ),
        Table(
            "table1e_num_views",
            "Table 1e: number of views",
            "views",
            (
                Row("B4", "B/4", {"model/variant": "B4", "model/fusion": "none"}, 78.3, 144.6),
                Row("B4_Ti8", "B/4+Ti/8", {"model/variant": "B4_Ti8"}, 80.8, 157.1),  # GMACs PROFILED
                Row("B4_S8_Ti16", "B/4+S/8+Ti/16", {"model/variant": "B4_S8_Ti16"}, THREE_VIEW_TOP1, THREE_VIEW_GMACS),
            ),
        ),
        Table(
            "table1f_fusion_layers",
            "Table 1f: CVA fusion layers (B/2+S/4+Ti/8)",
            "fusion layers",
            (
                Row("layers_0", "0", {"model/variant": "B2_S4_Ti8", "model.fusion.layers": [0]}, None, 372.9),
                Row("layers_5", "5", {"model/variant": "B2_S4_Ti8", "model.fusion.layers": [5]}),
                Row("layers_11", "11", {"model/variant": "B2_S4_Ti8", "model.fusion.layers": [11]}),
                Row("layers_5_11", "5, 11", {"model/variant": "B2_S4_Ti8", "model.fusion.layers": [5, 11]}, MTV_B_TOP1,
                    MTV_B_GMACS),
                Row("layers_all", "0-11", {"model/variant": "B2_S4_Ti8", "model.fusion.layers": list(range(12))}, None, 413.8),
            ),
        ),
    )
}
