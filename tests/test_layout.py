"""The package's modules stack as layers: no two import each other at module level, directly or round a loop
(an import inside a function, run when it is called, does not count)."""

import ast
from pathlib import Path

import budgetnas

PACKAGE = Path(budgetnas.__file__).resolve().parent


def module_imports() -> dict[str, set[str]]:
    """Each ``budgetnas`` module and the ``budgetnas`` modules its top level imports."""
    names = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        names[".".join(("budgetnas",) + (parts[:-1] if parts[-1] == "__init__" else parts))] = path
    graph = {}
    for name, path in names.items():
        deps = set()
        for node in ast.parse(path.read_text(encoding="utf-8")).body:  # top level; `if TYPE_CHECKING:` left out
            if isinstance(node, ast.Import):
                deps |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                deps.add(node.module)
                deps |= {f"{node.module}.{a.name}" for a in node.names}
        graph[name] = {d for d in deps if d in names and d != name}
    return graph


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


def test_no_two_modules_import_each_other_at_module_level():
    graph = module_imports()
    assert {"budgetnas.session", "budgetnas.data", "budgetnas.cli"} <= set(graph)  # it read the package
    assert {"budgetnas.space", "budgetnas.errors"} <= graph["budgetnas.budget"]  # and saw its imports
    assert cycles(graph) == []


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
    assert private_uses("import budgetnas\nbudgetnas.session.open_run(p)") == ["budgetnas.session"]


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
