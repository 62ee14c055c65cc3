"""experiments/mvit_rows.py: each row names a preset that exists, and our counts agree with the published ones."""

from __future__ import annotations

import pytest
from conftest import ROOT

from experiments.mvit_rows import MVIT_ROWS, row


@pytest.mark.parametrize("published", MVIT_ROWS, ids=lambda r: r.name)
def test_row_preset_exists_and_counts_agree(published):
    assert (ROOT / "conf" / "model" / f"{published.overrides['model']}.yaml").is_file()
    assert published.measured_gmacs == pytest.approx(published.gflops_per_view, rel=0.01)


def test_published_top1_of_the_issue():
    assert (row("mvit_b_16x4").top1, row("mvitv2_s_16x4").top1) == (78.4, 81.0)
    with pytest.raises(KeyError, match="mvit_b_16x4"):
        row("mvit_h")
