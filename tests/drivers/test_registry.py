"""The driver registry: what each driver can do decides the CLI's choices and a run's checks."""

import pytest

from budgetnas.cli import build_parser
from budgetnas.drivers import base
from budgetnas.errors import ConfigError


def test_every_registered_driver_has_its_entry_point():
    import importlib

    for d in base.DRIVERS.values():
        assert callable(importlib.import_module(d.module).run_search), d.name
        assert set(d.objectives) <= set(base.OBJECTIVES) and d.algorithms


def test_the_cli_offers_what_the_registry_holds():
    search = build_parser()._subparsers._group_actions[0].choices["search"]
    opts = {a.dest: a for a in search._actions}
    assert tuple(opts["driver"].choices) == tuple(base.DRIVERS)
    assert set(opts["algorithm"].choices) == {a for d in base.DRIVERS.values() for a in d.algorithms}
    assert tuple(opts["objective"].choices) == base.OBJECTIVES


@pytest.mark.parametrize("driver, algorithm, objective, message", [
    ("optuna", "hyperband", "accuracy", "the optuna driver runs tpe or random (use --driver keras-tuner)"),
    ("keras-tuner", "tpe", "accuracy", "the keras-tuner driver runs hyperband or bayesian or random (use --driver optuna)"),
    ("keras-tuner", None, "front", "--objective front: the keras-tuner driver searches accuracy only"),
])
def test_a_driver_refuses_what_it_cannot_do_in_one_line(driver, algorithm, objective, message):
    with pytest.raises(ConfigError, match=None) as exc:
        base.get(driver).check(algorithm, objective)
    assert message in str(exc.value)


def test_defaults_and_unknown_names():
    assert base.get("optuna").check(None, "front") == "tpe"
    assert base.get("keras-tuner").check(None, "accuracy") == "hyperband"
    with pytest.raises(ConfigError, match="unknown driver"):
        base.get("nevergrad")
