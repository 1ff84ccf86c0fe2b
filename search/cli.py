"""The ``budgetnas`` command line: a thin layer that parses options and prints.

Every :class:`~budgetnas.errors.BudgetNasError` becomes one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Sequence

from rich.console import Console

from budgetnas.compat import quiet_tensorflow
from budgetnas.errors import BudgetNasError, ConfigError, Stopped
from budgetnas.run.options import add_arguments


def _console() -> Console:
    tty = sys.stdout.isatty()
    return Console(highlight=False, width=None if tty else 160)


# ------------------------------------------------------------------ listing
def cmd_spaces(args: argparse.Namespace) -> int:
    import budgetnas

    console = _console()
    for name, s in budgetnas.list_spaces(args.dir).items():
        console.print(f"{name:45s} {len(s.params):3d} choices  {s.description}")
    return 0


def cmd_budgets(args: argparse.Namespace) -> int:
    import budgetnas

    console = _console()
    for name, b in budgetnas.load_budgets(args.budgets).items():
        console.print(f"{name:18s} {b.dataset:8s} ≤{b.max_params:>9,} {b.count} params, {b.epochs:2d} epochs  "
                      f"{b.description}")
    return 0


# ------------------------------------------------------------------ describe / rf
def _values_arg(raw: str | None) -> dict[str, Any] | None:
    if raw is None:
        return None
    try:
        v = json.loads(Path(raw[1:]).read_text() if raw.startswith("@") else raw)
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"--values: not a JSON object ({exc})") from None
    if not isinstance(v, dict):
        raise ConfigError("--values: must be a JSON object of parameter name -> value")
    return v


def cmd_describe(args: argparse.Namespace) -> int:
    import budgetnas
    from budgetnas.report.console import show_described

    quiet_tensorflow()
    space = budgetnas.load_space(args.space)
    described = budgetnas.describe(space, budget=args.budget, values=_values_arg(args.values), sample=args.sample,
                                   seed=args.seed, repair=not args.no_repair, budgets_file=args.budgets)
    console = _console()
    for i, (values, table, verdict) in enumerate(described):
        show_described(console, space, i, len(described), values, table, verdict, args.json)
    return 0


def cmd_rf(args: argparse.Namespace) -> int:
    import budgetnas
    from budgetnas.report.layers import layer_table

    table = budgetnas.layer_table(args.model)
    if args.json:
        print(json.dumps({"model": args.model, **table.as_dict()}))
    else:
        _console().print(layer_table(table, title=args.model))
    return 0


# ------------------------------------------------------------------ runs
def cmd_search(args: argparse.Namespace) -> int:
    import budgetnas
    from budgetnas.report.console import SearchView
    from budgetnas.run.options import from_arguments

    opts = from_arguments(args, budgets_file=args.budgets)
    retrain = opts.retrain and not args.json
    return _stoppable(lambda console: budgetnas.search(**{**vars(opts), "retrain": retrain},
                                                       hooks=SearchView(console, args.json, retrain)))


def cmd_worker(args: argparse.Namespace) -> int:
    import budgetnas
    from budgetnas.report.console import SearchView

    return _stoppable(lambda console: budgetnas.join(
        args.run, storage=args.storage, trials=args.trials, hooks=SearchView(console, False, False),
        reports_dir=args.reports_dir, data_dir=args.data_dir, heartbeat=args.heartbeat, grace=args.grace,
        patience=args.patience))


def cmd_retrain(args: argparse.Namespace) -> int:
    import budgetnas
    from budgetnas.report.console import epoch_printer, print_outcome, seed_printer

    def retrain(console: Console) -> None:
        run = budgetnas.open_run(args.run, reports_dir=args.reports_dir)
        if args.recipe or args.as_name:
            run = run.branch(args.as_name, args.recipe or [])
            console.print(f"{run.path}: the finalists of {args.run}, recipe changed: {', '.join(args.recipe)}")
        fins = run.retrain(top=args.top, seeds=args.seeds, epochs=args.epochs, front=args.front, start=args.start,
                           resume=args.resume, jobs=args.jobs, data_dir=args.data_dir, on_seed=seed_printer(console),
                           on_epoch=epoch_printer(console))
        print_outcome(console, run.path, fins)

    return _stoppable(retrain)


def cmd_train(args: argparse.Namespace) -> int:
    import budgetnas
    from budgetnas.report.console import epoch_printer, print_outcome, seed_printer

    def train(console: Console) -> None:
        run = budgetnas.train(args.space, budget=args.budget, name=args.name, reports_dir=args.reports_dir,
                              epochs=args.epochs, seeds=args.seeds, seed=args.seed, recipe=args.recipe,
                              data_dir=args.data_dir, resume=args.resume, jobs=args.jobs, budgets_file=args.budgets,
                              on_seed=seed_printer(console), on_epoch=epoch_printer(console))
        print_outcome(console, run.path, run.finalists())

    return _stoppable(train)


def _stoppable(step) -> int:
    """Run ``step(console)``; a Ctrl-C or SIGTERM in it is one line: what is kept and the command that continues."""
    quiet_tensorflow()
    from budgetnas.report.console import interrupted

    console = _console()
    try:
        step(console)
    except Stopped as exc:
        return interrupted(console, exc.__cause__, exc.kept, exc.command)
    return 0


def cmd_dashboard(args: argparse.Namespace) -> int:
    import signal

    import budgetnas
    from budgetnas.report.dashboard import serve

    path = budgetnas.open_run(args.run, reports_dir=args.reports_dir).path
    # nothing to record when it stops: SIGTERM ends the server at once (optuna-dashboard's own server would
    # swallow the KeyboardInterrupt a search turns it into)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    print(f"optuna-dashboard for {path}: http://{args.host}:{args.port}/ (Ctrl-C stops it)", flush=True)
    try:
        serve(path, args.storage, args.host, args.port)
    except KeyboardInterrupt:
        pass
    return 0


def cmd_leaderboard(args: argparse.Namespace) -> int:
    import budgetnas
    from budgetnas.report.leaderboard import summary_line

    board = budgetnas.open_run(args.run, reports_dir=args.reports_dir, storage=args.storage).leaderboard(
        top=args.top, front=args.front)
    if args.json:
        print(json.dumps(board.as_dict()))
        return 0
    _console().print(board, summary_line(list(board.records)), sep="\n")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    import budgetnas

    quiet_tensorflow()
    for p in budgetnas.open_run(args.run, reports_dir=args.reports_dir).report():
        print(p)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    import budgetnas
    from budgetnas.export import parse_formats

    formats = parse_formats(args.format) if args.format else None
    quiet_tensorflow()
    console, chosen = _console(), []

    def on_check(label: str, check) -> None:
        chosen[:] = [label]
        console.print(("" if check.ok else "[yellow]") + check.line())

    out = budgetnas.open_run(args.run, reports_dir=args.reports_dir).export(
        trial=args.trial, formats=formats, out=args.out, data_dir=args.data_dir, on_check=on_check)
    console.print(f"exported {chosen[0]} to {out}")
    return 0


# ------------------------------------------------------------------ parser
def _run_arg(s: argparse.ArgumentParser, data: bool = True) -> None:
    """A command on an existing run: its name or folder, where runs live (and where the data is)."""
    s.add_argument("run", help="run name or run directory")
    _folders(s, data)


def _folders(s: argparse.ArgumentParser, data: bool = True) -> None:
    s.add_argument("--reports-dir", default="reports", help="the folder run folders are in")
    if data:
        s.add_argument("--data-dir", default=None, help="folder with <dataset>.npz (else $BUDGETNAS_DATA_DIR)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="budgetnas", description="Find small CNNs under a hard parameter budget.")
    p.add_argument("--budgets", default=None, help="budgets file (default: ./budgets.toml or the shipped one)")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("spaces", help="list the shipped search spaces")
    s.add_argument("--dir", default=None, help="a folder of space files (default: the shipped spaces)")
    s.set_defaults(func=cmd_spaces)

    s = sub.add_parser("budgets", help="list the named budgets")
    s.set_defaults(func=cmd_budgets)

    s = sub.add_parser("describe", help="per-layer table and budget verdict of a space's networks")
    s.add_argument("space", help="a space file, e.g. spaces/mnist_tiny.toml, or a shipped space's name (mnist_tiny)")
    s.add_argument("--budget", help="judge against this budget (and repair over-budget samples)")
    s.add_argument("--sample", type=int, default=1, help="how many random candidates to describe")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--values", help="JSON object (or @file) of chosen values")
    s.add_argument("--no-repair", action="store_true", help="show the verdict without the repair step")
    s.add_argument("--json", action="store_true", help="one JSON object per model")
    s.set_defaults(func=cmd_describe)

    s = sub.add_parser("rf", help="per-layer table of a saved Keras model")
    s.add_argument("model")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_rf)

    s = sub.add_parser("search", help="run a budgeted architecture search")
    add_arguments(s)
    s.add_argument("--json", action="store_true", help="print the final leaderboard as JSON (no retrain)")
    s.set_defaults(func=cmd_search)

    s = sub.add_parser("worker", help="join a running search as one more worker (same study, any machine)")
    s.add_argument("run", help="the run (study) name")
    s.add_argument("--storage", required=True, help="the study's storage URL (postgresql://… or journal:FILE)")
    add_arguments(s, only=("trials", "reports_dir", "data_dir", "heartbeat", "grace", "patience"))
    s.set_defaults(func=cmd_worker)

    s = sub.add_parser("leaderboard", help="show a run's leaderboard from its storage")
    _run_arg(s, data=False)
    s.add_argument("--storage", help="storage URL (default: the run's)")
    s.add_argument("--top", type=int, default=10)
    s.add_argument("--front", action="store_true", help="the accuracy–size front, cheapest first")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_leaderboard)

    s = sub.add_parser("dashboard", help="open a run's study in optuna-dashboard (pip install 'budgetnas[dashboard]')")
    _run_arg(s, data=False)
    s.add_argument("--storage", help="storage URL (default: the run's)")
    s.add_argument("--host", default="127.0.0.1", help="address to serve on (default: loopback only)")
    s.add_argument("--port", type=int, default=8080)
    s.set_defaults(func=cmd_dashboard)

    s = sub.add_parser("retrain", help="retrain a run's best trials with several seeds; score them on test once")
    _run_arg(s)
    s.add_argument("--top", type=int, help="finalists (default: the budget's)")
    s.add_argument("--front", type=int, nargs="?", const=0, metavar="K",
                   help="retrain points of the front: K spread along it, or (no K) the best under each named "
                        "budget that fits (the default for a front search)")
    s.add_argument("--start", action="store_true",
                   help="also retrain the space's start points the search trained (a short search ranks slow "
                        "learners last; this scores them at full fidelity beside the finalists)")
    s.add_argument("--seeds", type=int, help="seeds per finalist (default: the budget's)")
    s.add_argument("--epochs", type=int, help="epochs (default: the budget's full count)")
    fresh = s.add_mutually_exclusive_group()  # --as starts a new folder, --resume continues one
    fresh.add_argument("--resume", action="store_true",
                       help="keep the seeds an interrupted retrain finished; continue the unfinished one")
    s.add_argument("--recipe", action="append", metavar="FIELD=VALUE",
                   help="retrain under a changed recipe (repeatable, e.g. ema=0.999); needs --as")
    fresh.add_argument("--as", dest="as_name", metavar="NAME",
                       help="with --recipe: the new run folder (same study and split); the original is untouched")
    add_arguments(s, only=("jobs",))
    s.set_defaults(func=cmd_retrain)

    s = sub.add_parser("train", help="train a fixed space (e.g. a hand-made baseline) like a finalist")
    s.add_argument("space")
    s.add_argument("--budget", required=True)
    s.add_argument("--epochs", type=int)
    s.add_argument("--seeds", type=int, default=1)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--recipe", choices=("budget", "baseline"), default="budget",
                   help="the budget's recipe, or the baseline network's original one")
    s.add_argument("--name")
    s.add_argument("--resume", action="store_true",
                   help="continue the interrupted run named by --name (same options)")
    add_arguments(s, only=("jobs",))
    _folders(s)
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("report", help="(re)write a run's report.md/html, plots and trials.csv")
    _run_arg(s, data=False)
    s.set_defaults(func=cmd_report)

    s = sub.add_parser("export", help="export a finalist as .keras, SavedModel, TFLite (float32, int8) + card")
    _run_arg(s)
    s.add_argument("--trial", type=int, help="finalist trial (default: the winner, by mean final validation accuracy)")
    s.add_argument("--format", help="comma-separated: keras, savedmodel, tflite, tflite-int8 (default: all)")
    s.add_argument("--out", help="output folder (default: RUN/export)")
    s.set_defaults(func=cmd_export)
    return p


def entry() -> None:
    """The ``budgetnas`` program: :func:`main`, then exit with its code."""
    sys.exit(main(_exits=True))


def main(argv: Sequence[str] | None = None, _exits: bool = False) -> int:
    """Run one ``budgetnas`` command; returns its exit code (``_exits``: the process ends right after)."""
    from budgetnas import interrupts

    from budgetnas.report.console import away_line, log_to_stderr

    args = build_parser().parse_args(argv)
    log_to_stderr()
    try:
        with interrupts.handled(restore=not _exits):
            return args.func(args)
    except BudgetNasError as exc:
        print(f"budgetnas: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        if not away_line(exc):
            raise
        print(f"budgetnas: error: {away_line(exc)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    entry()
