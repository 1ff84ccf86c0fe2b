"""After a search: retrain a run's best trials with seeds, or train one fixed network (a baseline).

Both train each seed with :func:`budgetnas.finalists.train_seed` (here, or side by side in the processes
of :mod:`budgetnas.seedpool`), save ``finalists.json`` after every seed, then write the run's report;
``resume`` continues an interrupted retrain from its epoch checkpoints.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from budgetnas.budget import Budget, Recipe
from budgetnas.errors import RunError
from budgetnas.run.folder import fitting_budgets, load_data_splits, open_folder
from budgetnas.run.report import write_run_report
from budgetnas.space import Space


def protocol(meta_seed: int, budget: Budget, space: Space, train, val, test, epochs: int, seeds: list[int],
             name: str) -> dict:
    return {"name": name, "space": space.path, "seed": meta_seed, "validation": len(val),
            "train_images": len(train), "test_images": len(test), "epochs": epochs, "seeds": seeds,
            "input_shape": list(space.input_shape), "classes": space.classes}


def retrain_run(path: Path, *, top: int | None = None, seeds: int | None = None, epochs: int | None = None,
                data_dir: str | None = None, on_seed=None, on_epoch=None, resume: bool = False,
                jobs: int | None = None, front: int | None = None, start: bool = False) -> list:
    """Retrain the top-K completed trials of a run with N seeds; save finalists, then the report.

    ``front``: retrain points of the accuracy–size front instead: ``front`` of them spread along it
    (:func:`budgetnas.front.spread`), or with 0 the best trial under each named budget that fits
    (:func:`budgetnas.run.folder.fitting_budgets`; each chosen on validation).

    ``start``: the space's start points the search trained (completed or pruned) are retrained too, after the
    chosen trials. A short search ranks networks that learn slowly (no BatchNorm) last, whatever they reach in
    full; retrained, they are judged at the same fidelity as the finalists (the report's retrained front). A
    budget with ``search.retrain_start`` always retrains them (a fixed network's run has none).

    ``resume`` keeps the seeds an earlier, interrupted retrain of the same finalists finished and
    continues its unfinished seed from the last epoch checkpoint. ``jobs`` seeds train at once in
    separate processes (default on a CPU-only machine: all, up to 2 per core; see
    :func:`budgetnas.seedpool.plan`).
    """
    from budgetnas import finalists as fin_mod
    from budgetnas.run.folder import ranked

    meta, budget, space, records = open_folder(path)
    top = top if top is not None else budget.search.finalists
    n_seeds = seeds if seeds is not None else budget.search.seeds
    fixed = meta.driver == "train"  # one fixed network's run (`budgetnas train`): the network is its finalist
    start = start or (budget.search.retrain_start and not fixed)
    epochs = epochs if epochs is not None else meta.max_epochs if fixed else budget.epochs
    if fixed:
        if front is not None or start:
            raise RunError(f"{path}: a run of one fixed network has no front and no start points; "
                           "retrain it without --front and --start")
        shells = [fin_mod.shell(space.name, None, budget, space, {}, budget.train.resolve({}), epochs)]
    else:
        chosen = ([r for r in ranked(records) if r.status == "complete"][:top] if front is None
                  else front_points(records, front, fitting_budgets(meta, budget), meta.cost))
        if start:
            chosen += start_points(records, {r.number for r in chosen})
        if not chosen:
            raise RunError(f"{path}: no completed trial to retrain")
        shells = [fin_mod.shell(f"trial {r.number}", r.number, budget, space, r.values,
                                budget.train.resolve(r.values), epochs, r.score) for r in chosen]
    ds, train, val = load_data_splits(budget, space, data_dir or meta.data_dir, meta.seed)
    seed_list = [meta.seed + i for i in range(n_seeds)]
    proto = protocol(meta.seed, budget, space, train, val, ds.test, epochs, seed_list, meta.name)
    earlier = _earlier_finalists(path, epochs) if resume else {}
    loaded = (budget, space, train, val, ds.test)
    if budget.search.final_fit == "all" and front is None and not fixed:  # as `budgetnas train`: no refit
        proto["final_fit"] = "all"
        if len(shells) > 1:  # the finalists compete on validation first; the winner is then fitted on all images
            shells = _train_seeds(path, shells, earlier, seed_list, loaded, data_dir or meta.data_dir, meta.seed,
                                  proto, resume, jobs, on_seed, on_epoch)
            kept, refit = shells, replace(fin_mod.winner(shells), seeds=[])
        else:  # one finalist: the search chose it on validation already
            kept, refit = [], replace(shells[0], seeds=[])
        refit.label, refit.fit = f"{refit.label} (all images)", "all"
        shells = [*kept, *_train_seeds(path, [refit], earlier, seed_list, loaded, data_dir or meta.data_dir,
                                       meta.seed, proto, resume, jobs, on_seed, on_epoch, kept=kept)]
    else:
        shells = _train_seeds(path, shells, earlier, seed_list, loaded, data_dir or meta.data_dir, meta.seed, proto,
                              resume, jobs, on_seed, on_epoch)
    write_run_report(path)
    return shells


def front_points(records: list, k: int, limits: dict[str, int], cost: str = "params") -> list:
    """The front's trials to retrain: ``k`` spread along it, or (``k`` = 0) the best under each of ``limits``
    (name → max params), cheapest first, each trial once; three spread along it when no trial fits them."""
    from budgetnas import front

    picked = {} if k else {r.number: r for r in front.best_under(records, limits).values()}
    if picked:
        return sorted(picked.values(), key=lambda r: r.params)
    line = front.front_records(records, cost)  # k points, or three when no named budget has a trial
    pts = [front.Point(r.val_accuracy, front.cost_of(r, cost)) for r in line]
    return [line[i] for i in front.spread(pts, k or 3)] if line else []


def start_points(records: list, taken: set[int] = frozenset()) -> list:
    """The trials that trained one of the space's start points (completed or pruned), in trial order, except
    those in ``taken``; a start point trained twice (a retry) counts once, its first record."""
    seen, out = set(), []
    for r in records:
        if r.start and r.start not in seen and r.status in ("complete", "pruned") and r.val_accuracy is not None:
            seen.add(r.start)
            if r.number not in taken:
                out.append(r)
    return out


def _train_seeds(path: Path, shells: list, earlier: dict[str, list], seeds: list[int], loaded: tuple,
                 data_dir: str | None, split_seed: int, proto: dict, resume: bool, jobs: int | None,
                 on_seed, on_epoch, kept: list = ()) -> list:
    """Train every seed of every finalist shell; save ``finalists.json`` (``kept`` finalists first) after each seed.

    One seed after another in this process when one job runs at a time, else in parallel processes
    (:mod:`budgetnas.seedpool`). Seeds an interrupted retrain finished (``earlier``) are kept.
    """
    from budgetnas import finalists as fin_mod
    from budgetnas import seedpool

    budget, space, train, val, test = loaded
    for fin in shells:
        fin.seeds = list(earlier.get(fin.label, [])) if resume else []
    todo = [seedpool.Job(fin.label, seed, fin.values, fin.recipe, fin.fit) for fin in shells
            for seed in seeds if seed not in {s.seed for s in fin.seeds}]
    by_label = {fin.label: fin for fin in shells}
    processes, threads = seedpool.plan(len(todo), jobs)

    def finished(job, result) -> None:
        fin = by_label[job.label]
        fin.seeds = sorted([*fin.seeds, result], key=lambda s: s.seed)
        # Save after every seed: a retrain stopped midway keeps what it finished.
        fin_mod.save(path, [*kept, *[f for f in shells if f.seeds]], proto)
        if on_seed is not None:
            on_seed(job.label, job.seed, result.test_accuracy)

    if processes == 1:
        for job in todo:
            finished(job, fin_mod.train_seed(job.label, budget, space, job.values, Recipe(**job.recipe), train, val,
                                             test, proto["epochs"], job.seed, path / "finalists", resume, on_epoch,
                                             job.fit))
    else:
        for job, result in seedpool.train_all(path, Path(space.path).name, data_dir, split_seed, todo, proto["epochs"],
                                              processes, threads, resume, on_epoch):
            finished(job, result)
    return shells


def _earlier_finalists(path: Path, epochs: int) -> dict[str, list]:
    """The seeds an interrupted retrain finished, by finalist label (empty if it saved none)."""
    from budgetnas import finalists as fin_mod

    if not (path / fin_mod.FILE).exists():
        return {}
    proto, fins = fin_mod.load(path)  # a damaged file: one line naming it, rather than retraining every seed
    if proto.get("epochs") != epochs:
        raise RunError(f"{path}: the earlier retrain ran {proto.get('epochs')} epochs, not {epochs}; "
                       "resume with the same --epochs")
    return {f.label: f.seeds for f in fins}


def train_fixed(space_path: str, budget: Budget, *, name: str, reports_dir: str = "reports",
                epochs: int | None = None, seeds: int = 1, recipe_kind: str = "budget", data_dir: str | None = None,
                seed: int = 0, on_seed=None, on_epoch=None, resume: bool = False, jobs: int | None = None):
    """Train one fixed network (e.g. a hand-made baseline) through the same trainer and reporting, in the run
    folder :func:`budgetnas.run.start.prepare_fixed` makes. ``resume`` continues the interrupted run called ``name``
    (see :func:`retrain_run`).
    """
    from budgetnas import finalists as fin_mod
    from budgetnas.run.start import prepare_fixed

    path, meta, space, recipe = prepare_fixed(space_path, budget, name=name, reports_dir=reports_dir, epochs=epochs,
                                              recipe_kind=recipe_kind, data_dir=data_dir, seed=seed, resume=resume,
                                              seeds=seeds)
    earlier = _earlier_finalists(path, meta.max_epochs) if resume else {}
    ds, train, val = load_data_splits(budget, space, data_dir, seed)
    seed_list = [seed + i for i in range(seeds)]
    proto = protocol(seed, budget, space, train, val, ds.test, meta.max_epochs, seed_list, name)
    proto["recipe"] = recipe_kind
    shell = fin_mod.shell(space.name, None, budget, space, {}, recipe.resolve({}), meta.max_epochs)
    [fin] = _train_seeds(path, [shell], earlier, seed_list, (budget, space, train, val, ds.test), data_dir, seed,
                         proto, resume, jobs, on_seed, on_epoch)
    write_run_report(path)
    return fin
