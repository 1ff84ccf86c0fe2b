"""A run and its life: the folder that holds it, and the steps that fill it.

    start.py     create a run's folder (or reopen it to resume), or join it as a worker from its storage
    folder.py    the folder: run.json, the frozen budget and space, trial records, the run's data split
    search.py    one process's search: the run's data and study, handed to its driver
    rescore.py   the best trials trained again on all training images
    retrain.py   finalists retrained with seeds (or one fixed network trained), test scored once per seed
    report.py    report.md / report.html, plots, trials.csv
    pipeline.py  search → re-score → retrain in one call, with hooks for what is shown
    handle.py    :class:`Run` and :func:`search`, :func:`open_run`, :func:`join`, :func:`train`: the public face

Options of a search are declared once in options.py. Nothing is imported here: the modules are imported by name.
"""
