"""Rendered output, compared as text (rich's own tests/render.py style)."""

import io

from rich.console import Console

from budgetnas.build import build_model
from budgetnas.receptive import table_from_model
from budgetnas.report.layers import layer_table
from budgetnas.report.leaderboard import counts, leaderboard, summary_line
from budgetnas.run.folder import TrialRecord
from budgetnas.space import load_space
from tests.conftest import ROOT


def render(renderable) -> str:
    console = Console(file=io.StringIO(), width=100, color_system=None)
    console.print(renderable)
    return console.file.getvalue()


RECORDS = [
    TrialRecord(0, "complete", params=12000, macs=900000, val_accuracy=0.981, epochs=3, architecture="C8 | gap-conv"),
    TrialRecord(1, "pruned", params=9000, macs=500000, val_accuracy=0.95, epochs=1, reason="pruned after epoch 1"),
    TrialRecord(2, "rejected", params=20000, reason="params: 20,000 total params > limit 15,000; rf: too small"),
    TrialRecord(3, "complete", params=14000, macs=1200000, val_accuracy=0.987, epochs=3),
    TrialRecord(4, "failed", params=11000, reason="loss became nan in epoch 1"),
]


def test_leaderboard_ranks_completed_trials_by_validation_accuracy():
    text = render(leaderboard(RECORDS, 15000, top=5))
    lines = [line for line in text.splitlines() if line.startswith("│")]
    assert lines[0].split("│")[2].strip() == "3" and "98.70%" in lines[0] and "93.3" in lines[0]
    assert lines[1].split("│")[2].strip() == "0" and "98.10%" in lines[1] and "0.90M" in lines[1]
    assert lines[2].split("│")[2].strip() == "1" and "pruned" in lines[2]
    assert len(lines) == 3  # rejected and failed trials have no score


def test_counts_and_summary():
    c = counts(RECORDS)
    assert c["complete"] == 2 and c["pruned"] == 1 and c["rejected"] == 1 and c["failed"] == 1
    assert c["rejected_by_reason"] == {"params": 1, "rf": 1}
    assert summary_line(RECORDS) == ("5 trials: 2 completed, 1 pruned early, 1 rejected by the gate "
                                     "(params 1, rf 1), 1 failed")


def test_layer_table_renders_rf_columns():
    table = table_from_model(build_model(load_space(ROOT / "spaces" / "seed_mnist_13794.toml"), {}))
    text = render(layer_table(table))
    row = next(line for line in text.splitlines() if "conv2d_6" in line)
    cells = [c.strip() for c in row.split("│")[1:-1]]
    assert cells[1:] == ["Conv2D", "1×1×10", "2,570", "2,560", "4/1/1", "2", "28", "13.5"]
    assert "13,794" in text.splitlines()[-2]


def test_total_row_names_what_its_rf_is():
    # the last row (the 4x4 head conv) sees 28 pixels; the total row gives the RF before the head: 22
    from budgetnas.report.layers import layer_markdown

    table = table_from_model(build_model(load_space(ROOT / "spaces" / "seed_mnist_13794.toml"), {}))
    total = [c.strip() for c in render(layer_table(table)).splitlines()[-2].split("│")[1:-1]]
    assert total[0] == "total (RF pre-head)" and total[3] == "13,794" and total[7] == "22"
    assert layer_markdown(table).splitlines()[-1].endswith("RF before the head: 22 | |")
