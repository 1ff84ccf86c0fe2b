"""Re-scoring: a search's best trials trained again on all training images, their new validation score kept in
the study (finalists are then chosen among them by it)."""

from __future__ import annotations

from budgetnas.drivers.common import SearchContext
from budgetnas.errors import RunError


RESCORE_SEED = 100_003  # a re-scoring run of trial n trains with seed + n + this: apart from every trial's own


def rescore_top(ctx: SearchContext, study, k: int, on_rescored=None) -> int:
    """Train the ``k`` best completed trials again, on all training images for the search's epochs.

    Finalists are then chosen among them by this score alone (:func:`budgetnas.run.folder.ranked`). Measured on
    the mnist-8k ranking benchmark (``benchmarks/ranking/proxy_table.md``): the search's own score is off
    by its short training's bias more than by seed noise; in simulated searches a second seed at the same
    fidelity picked no better, while re-scoring the top 3 on all 55k images cut the pick's expected
    shortfall below the best by 0.03-0.04 points; on the 18 finished searches of
    ``benchmarks/search_vs_random`` it raised the picks' full-fidelity validation by +0.04 ± 0.02 points on
    average (six better, two worse), and by -0.00 ± 0.01 on the same searches' first 12 trials (mnist-8k's
    trial count; one better, three worse). Below the 0.1-point noise floor, so ``search.rescore`` is 0 (off).
    Returns how many were trained (:func:`rescore_trials`).
    """
    return rescore_trials(ctx, study, best_completed(study, k), on_rescored)


def best_completed(study, k: int) -> list[int]:
    """The numbers of the ``k`` best completed trials by the search's own score (then fewer params)."""
    from budgetnas.run.folder import records_from_study

    completed = [r for r in records_from_study(study) if r.status == "complete" and r.val_accuracy is not None]
    return [r.number for r in sorted(completed, key=lambda r: (-r.val_accuracy, r.params or 0))[:k]]


def rescore_trials(ctx: SearchContext, study, numbers: list[int], on_rescored=None) -> int:
    """Train trials ``numbers`` again (:func:`rescore_one`), saving each score in the study as it finishes, so a
    resumed or repeated call trains only what is missing; ``on_rescored(number, search score, new score)``
    after each. Returns how many were trained.

    Raises:
        RunError: no such trial, or one that was not trained (rejected by the gate, failed, a duplicate).
    """
    from budgetnas.run.folder import RESCORES, records_from_study

    by_number = {r.number: r for r in records_from_study(study)}
    for n in numbers:
        if n not in by_number:
            raise RunError(f"study {study.study_name}: no trial {n}")
        if by_number[n].status not in ("complete", "pruned"):
            raise RunError(f"study {study.study_name}: trial {n} is {by_number[n].status}, not a trained network "
                           "to re-score")
    done = dict(study.user_attrs.get(RESCORES, {}))
    trained = 0
    for n in numbers:
        if str(n) in done:
            continue
        r = by_number[n]
        done[str(n)] = rescore_one(ctx, n, r.values)
        study.set_user_attr(RESCORES, done)
        trained += 1
        if on_rescored is not None:
            on_rescored(n, r.val_accuracy, done[str(n)])
    return trained


def rescore_one(ctx: SearchContext, number: int, values: dict) -> float:
    """Trial ``number`` (its sampled ``values``) trained again on all training images for the search's epochs,
    with its own re-scoring seed; the final validation accuracy. The same trial always gets the same seed."""
    from budgetnas.trainer import fit_candidate

    seed = ctx.seed + number + RESCORE_SEED
    _, h, _ = fit_candidate(ctx.space, values, ctx.budget.train.resolve(values), ctx.full_train, ctx.val, ctx.epochs,
                            seed=seed)
    return h.val_accuracy[-1]
