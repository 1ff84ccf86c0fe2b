import io

from rich.console import Console

from budgetnas.report.live import LiveDisplay, PlainDisplay
from budgetnas.run.folder import TrialRecord


def test_live_display_shows_progress_and_top_trials():
    console = Console(file=io.StringIO(), width=120, force_terminal=True, color_system=None)
    with LiveDisplay(console, planned=3, epochs=2, max_params=15000, records=[], steps_per_epoch=10) as ui:
        ui.on_start(0)
        ui.on_batch(4, {"loss": 0.5, "accuracy": 0.8})
        ui.on_epoch(0, 1, 0.97)
        ui.on_done(TrialRecord(0, "complete", params=12000, macs=10**6, val_accuracy=0.981, epochs=2,
                               architecture="C8 | gap-conv"))
    text = console.file.getvalue()
    assert "trials" in text and "1/3" in text
    assert "Top trials" in text and "98.10%" in text and "C8 | gap-conv" in text
    assert "1 trials: 1 completed" in text


def test_plain_display_prints_one_line_per_event():
    console = Console(file=io.StringIO(), width=200, color_system=None)
    ui = PlainDisplay(console, planned=2, epochs=2, max_params=15000, records=[])
    ui.on_epoch(0, 1, 0.9512)
    ui.on_done(TrialRecord(0, "rejected", params=20000, reason="params: 20,000 total params > limit 15,000"))
    lines = console.file.getvalue().splitlines()
    assert lines[0] == "trial 0 epoch 1/2 val_accuracy 0.9512"
    assert lines[1].startswith("trial 0 rejected (params: 20,000 total params > limit 15,000): params 20,000")


def test_a_resumed_search_counts_its_planned_trials_not_its_records():
    """After a resume the run holds the interrupted trial and its waiting replacement; neither is a finished trial,
    and the replacement, once done, is one trial (not a second record beside its waiting self)."""
    console = Console(file=io.StringIO(), width=200, color_system=None)
    before = [TrialRecord(0, "complete", params=9000, val_accuracy=0.98), TrialRecord(1, "interrupted", params=8000),
              TrialRecord(2, "running", params=8000)]
    ui = PlainDisplay(console, planned=3, epochs=2, max_params=15000, records=before)
    ui.on_done(TrialRecord(2, "complete", params=8000, val_accuracy=0.97, epochs=2))
    ui.on_done(TrialRecord(3, "failed", params=7000, retry_of=None))
    lines = console.file.getvalue().splitlines()
    assert "[2/3 trials" in lines[0] and "[3/3 trials" in lines[1]
    assert [r.status for r in ui.records] == ["complete", "interrupted", "complete", "failed"]
