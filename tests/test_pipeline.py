"""One search process's pipeline (search → re-score → retrain) on tiny real data: the hooks see each step in
order, an interrupt in any step says what is kept and the command that continues, and nothing finished is lost."""

import pytest

import budgetnas
from budgetnas.errors import Stopped
from budgetnas.run.pipeline import Hooks, drive
from budgetnas.run.options import SearchOptions
from budgetnas.run.search import begin
from budgetnas.run.start import prepare


class Seen(Hooks):
    """Records the steps; ``stop_in``: Ctrl-C in the first epoch of that trial."""

    def __init__(self, stop_in: int | None = None, go_on: bool = True):
        self.steps, self.stop_in, self.go_on = [], stop_in, go_on

    def searching(self, s):
        self.steps.append("searching")
        hooks = self

        class Display:
            def __enter__(self):
                return self

            def __exit__(self, *exc):
                hooks.steps.append("display closed")

            def on_start(self, number): ...
            def on_batch(self, step, logs): ...
            def on_done(self, rec): ...

            def on_epoch(self, number, epoch, acc):
                if number == hooks.stop_in:
                    raise KeyboardInterrupt

        return Display()

    def rescoring(self, s):
        self.steps.append(f"rescoring {s.rescores}")

    def rescored(self, number, first, second):
        self.steps.append("rescored")

    def searched(self, s):
        self.steps.append("searched")
        return self.go_on

    def retrained(self, finalists):
        self.steps.append(f"retrained {len(finalists)}")


def _open(tmp_path, budgets, name, resume=False, **kw):
    opts = SearchOptions(budget="tiny", budgets_file=str(budgets), name=name, reports_dir=str(tmp_path),
                         resume=resume, **kw)
    path, meta, budget, space = prepare(opts)
    return begin(path, meta, budget, space, create=not resume)


def test_the_steps_in_order_and_no_retrain_when_the_view_says_so(tmp_path, tiny_budgets):
    hooks = Seen(go_on=False)
    assert drive(_open(tmp_path, tiny_budgets, "a", trials=2, train_subset=100), hooks) is None
    assert hooks.steps == ["searching", "display closed", "searched"]  # tiny's search.rescore is 0
    run = budgetnas.open_run(tmp_path / "a")
    assert len(run.records()) == 2 and run.finalists() == []


def test_an_interrupted_search_keeps_its_finished_trials_and_says_how_to_continue(tmp_path, tiny_budgets):
    s = _open(tmp_path, tiny_budgets, "b", trials=3, train_subset=100)
    with pytest.raises(Stopped) as stopped:
        drive(s, Seen(stop_in=1))
    exc = stopped.value
    assert isinstance(exc, KeyboardInterrupt) and type(exc.__cause__) is KeyboardInterrupt
    assert exc.kept == "finished trials are saved"
    assert exc.command == f"budgetnas search --budget tiny --name b --resume --reports-dir {tmp_path}"
    before = budgetnas.open_run(tmp_path / "b").records()
    assert before[0].status in ("complete", "pruned") and before[1].status == "interrupted"

    # what the command says, from code: the finished trial stays as it was, the run ends with its 3 trials
    hooks = Seen()
    drive(_open(tmp_path, tiny_budgets, "b", resume=True), hooks, retrain=False)
    after = budgetnas.open_run(tmp_path / "b").records()
    assert after[0] == before[0] and sum(r.status in ("complete", "pruned") for r in after) == 3
    assert any(r.status == "interrupted" for r in after)  # recorded as such, and trained again
    assert hooks.steps == ["searching", "display closed", "searched"]


@pytest.mark.slow
def test_re_scoring_and_retraining_are_steps_of_the_same_drive(tmp_path, tiny_budgets):
    budgets = tmp_path / "budgets.toml"
    budgets.write_text(tiny_budgets.read_text().replace("[tiny.search]\n", "[tiny.search]\nrescore = 1\n", 1))
    hooks = Seen()
    fins = drive(_open(tmp_path, budgets, "c", trials=2, train_subset=100), hooks, jobs=1)
    assert hooks.steps == ["searching", "display closed", "rescoring 1", "rescored", "searched", "retrained 1"]
    run = budgetnas.open_run(tmp_path / "c")
    rescored = [r for r in run.records() if r.rescore is not None]
    assert len(rescored) == 1 and [f.trial for f in fins] == [rescored[0].number]  # the finalist: the re-scored one
