"""The package's modules stack as layers: no two import each other, directly or round a loop, counting the
imports inside functions (run when the function is called, they tie the modules together all the same); only
``if TYPE_CHECKING:`` blocks are left out."""

import ast
from pathlib import Path

import budgetnas

PACKAGE = Path(budgetnas.__file__).resolve().parent


def _module_names() -> dict[str, Path]:
    names = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        names[".".join(("budgetnas",) + (parts[:-1] if parts[-1] == "__init__" else parts))] = path
    return names


def imports_of(source: str, modules: set[str]) -> set[str]:
    """The ``modules`` that ``source`` imports anywhere (functions included, ``if TYPE_CHECKING:`` left out).
    ``from budgetnas import files`` names the module ``budgetnas.files``; a name that is not a module names
    the package."""
    deps: set[str] = set()

    def walk(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            if isinstance(child, ast.Import):
                deps.update(a.name for a in child.names)
            elif isinstance(child, ast.ImportFrom) and child.module and not child.level:
                subs = {f"{child.module}.{a.name}" for a in child.names} & modules
                deps.update(subs)
                if len(subs) < len(child.names):
                    deps.add(child.module)
            walk(child)

    walk(ast.parse(source))
    return deps & modules


def module_imports(extra: dict[str, str] | None = None) -> dict[str, set[str]]:
    """Each ``budgetnas`` module and the ``budgetnas`` modules it imports (``extra``: module name → source that
    replaces or adds a module, for the test that this check fails)."""
    names = _module_names()
    sources = {name: path.read_text(encoding="utf-8") for name, path in names.items()} | (extra or {})
    return {name: imports_of(src, set(sources)) - {name} for name, src in sources.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected set of more than one module (Tarjan's algorithm)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_cycles_finds_a_loop_and_only_a_loop():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_two_modules_import_each_other():
    graph = module_imports()
    assert {"budgetnas.run.search", "budgetnas.data", "budgetnas.cli"} <= set(graph)  # it read the package
    assert {"budgetnas.space", "budgetnas.errors"} <= graph["budgetnas.budget"]  # and saw its imports
    assert "budgetnas.build" in graph["budgetnas.trainer"]  # imported inside a function, and counted
    assert cycles(graph) == []


def test_the_command_line_calls_the_public_api_and_no_step_of_a_run():
    """cli.py parses, calls budgetnas.search / join / train / open_run → Run / judge, and shows: it imports no
    module that carries out a step of a run (those are reached through the API)."""
    steps = {"budgetnas.run.start", "budgetnas.run.search", "budgetnas.run.rescore", "budgetnas.run.retrain",
             "budgetnas.run.pipeline", "budgetnas.run.folder", "budgetnas.run.report", "budgetnas.seedpool",
             "budgetnas.trainer", "budgetnas.finalists", "budgetnas.gate"}
    graph = module_imports()
    assert "budgetnas.run.options" in graph["budgetnas.cli"]  # it read the CLI's imports
    assert graph["budgetnas.cli"] & steps == set()


def test_an_import_inside_a_function_that_closes_a_loop_fails_the_check():
    source = (PACKAGE / "receptive.py").read_text(encoding="utf-8")
    looped = source + "\n\ndef _loop():\n    from budgetnas.gate import judge\n    return judge\n"
    assert ["budgetnas.gate", "budgetnas.receptive"] in cycles(module_imports({"budgetnas.receptive": looped}))
    typed = source + "\n\nif TYPE_CHECKING:\n    from budgetnas.gate import judge\n"
    assert cycles(module_imports({"budgetnas.receptive": typed})) == []


BENCHMARKS = PACKAGE.parent / "benchmarks" if (PACKAGE.parent / "benchmarks").is_dir() else Path("benchmarks")


def private_uses(source: str) -> list[str]:
    """What a script takes from budgetnas beyond its public API (``budgetnas.__all__``): submodule imports
    (``from budgetnas.gate import admit``, ``import budgetnas.data``) and names outside ``__all__``, imported or
    reached as ``budgetnas.NAME``, wherever they appear (inside functions too)."""
    public = set(budgetnas.__all__) | {"__version__"}
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("budgetnas"):
            if node.module != "budgetnas":
                out.append(f"from {node.module} import ...")
            else:
                out += [f"from budgetnas import {a.name}" for a in node.names if a.name not in public]
        elif isinstance(node, ast.Import):
            out += [f"import {a.name}" for a in node.names if a.name.startswith("budgetnas.")]
        elif (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "budgetnas"
              and node.attr not in public):
            out.append(f"budgetnas.{node.attr}")
    return out


def test_private_uses_sees_every_way_past_the_public_api():
    assert private_uses("import budgetnas\nbudgetnas.search('mnist-8k')\nfrom budgetnas import judge") == []
    assert private_uses("def f():\n    from budgetnas.gate import admit\n") == ["from budgetnas.gate import ..."]
    assert private_uses("from budgetnas import gate, judge") == ["from budgetnas import gate"]
    assert private_uses("import budgetnas.data") == ["import budgetnas.data"]
    assert private_uses("import budgetnas\nbudgetnas.run.open_run(p)") == ["budgetnas.run"]


def test_benchmarks_use_the_public_api_only():
    scripts = sorted(BENCHMARKS.glob("*.py"))
    assert len(scripts) >= 10  # it found them
    found = {p.name: private_uses(p.read_text(encoding="utf-8")) for p in scripts}
    assert {name: uses for name, uses in found.items() if uses} == {}


def test_readme_is_a_short_user_guide_whose_links_resolve():
    import re

    from tests.conftest import ROOT

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 200
    for link in re.findall(r"\]\(((?:docs|examples)/[^)#]+)", readme):
        assert (ROOT / link).is_file(), link
