from pathlib import Path

import pytest

from budgetnas.budget import load_budgets
from budgetnas.errors import ConfigError
from budgetnas.space import Domain
from tests.conftest import ROOT


def test_shipped_budgets():
    b = load_budgets(ROOT / "budgets.toml")
    assert {"mnist-99", "mnist-15k", "mnist-8k", "cifar10-sep-100k"} <= set(b)
    assert b["mnist-15k"].max_params == 15_000 and b["mnist-15k"].epochs < 20
    sep = b["cifar10-sep-100k"]
    assert sep.forbidden_layers == ("Conv2D", "Dense") and sep.require_batchnorm and sep.require_dropout
    assert sep.max_params < 100_000


def test_every_shipped_value_is_commented():
    """nanoGPT style: each default in budgets.toml says what it means (inherited keys excepted)."""
    seen: set[str] = set()
    for line in (ROOT / "budgets.toml").read_text().splitlines():
        line = line.strip()
        if "=" in line and not line.startswith("#"):
            key = line.split("=")[0].strip()
            if key not in seen:
                assert "#" in line, f"uncommented first use of {key}: {line}"
            seen.add(key)


def write(tmp_path, text):
    p = tmp_path / "b.toml"
    p.write_text(text)
    return p


def test_unknown_key_names_file_and_field(tmp_path):
    p = write(tmp_path, '[x]\ndataset="mnist"\nspace="s.toml"\nmax_params=10\nepochs=1\nmax_parms=3\n')
    with pytest.raises(ConfigError, match=f"{p}: x.max_parms: unknown key"):
        load_budgets(p)


def test_wrong_type_and_missing_key(tmp_path):
    p = write(tmp_path, '[x]\ndataset="mnist"\nspace="s.toml"\nmax_params="ten"\nepochs=1\n')
    with pytest.raises(ConfigError, match="x.max_params = 'ten' must be int"):
        load_budgets(p)
    p = write(tmp_path, '[x]\ndataset="mnist"\nmax_params=1\nepochs=1\n')
    with pytest.raises(ConfigError, match="x.space: required key is missing"):
        load_budgets(p)
    p = write(tmp_path, '[x]\ndataset="mnist"\nspace="s"\nmax_params=1\nepochs=1\n[x.train]\nschedule="fast"\n')
    with pytest.raises(ConfigError, match="x.train.schedule = 'fast' must be one of"):
        load_budgets(p)


def test_recipe_choices_become_train_parameters(tmp_path):
    p = write(tmp_path, '[x]\ndataset="mnist"\nspace="s"\nmax_params=1\nepochs=2\n[x.train]\nlr=[0.01, 0.1]\n')
    b = load_budgets(p)["x"]
    assert [(q.name, q.domain) for q in b.params()] == [("train.lr", Domain((0.01, 0.1)))]
    assert b.train.resolve({"train.lr": 0.1}).lr == 0.1


def test_shipped_budgets_and_spaces_are_found_from_any_folder(tmp_path, monkeypatch):
    from budgetnas.budget import default_budgets_file, get_budget
    from budgetnas.space import load_space, shipped

    monkeypatch.chdir(tmp_path)  # no budgets.toml, no spaces/ here
    assert default_budgets_file() == shipped("budgets.toml")
    budget = get_budget("mnist-15k")
    assert load_space(budget.space).name == "mnist_tiny"  # the budget's space path resolves too
    assert load_space("mnist_tiny").params == load_space(ROOT / "spaces" / "mnist_tiny.toml").params
    # a local budgets.toml overrides the shipped one
    (tmp_path / "budgets.toml").write_text((ROOT / "budgets.toml").read_text().replace(
        "max_params = 15000", "max_params = 14000"))
    assert default_budgets_file() == Path("budgets.toml") and get_budget("mnist-15k").max_params == 14000


def test_a_candidate_keeps_network_and_recipe_values_apart():
    from budgetnas.budget import Candidate

    c = Candidate.of({"blocks[0].channels": 8, "train.lr": 0.1, "head.kind": "gap", "train.augment": "none"})
    assert c.network == {"blocks[0].channels": 8, "head.kind": "gap"}
    assert c.recipe == {"train.lr": 0.1, "train.augment": "none"}
