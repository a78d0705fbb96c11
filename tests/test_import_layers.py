"""The import direction the code promises: no module imports, at load time, one that imports it back.

Import circles are what made ``tasks.py`` and the services import each other inside functions; this reads every
module's top-level imports (not the ones inside functions, which are how a task reaches its service on purpose,
nor ``if TYPE_CHECKING:`` blocks) and fails on any circle, naming it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("inference", "ml_training", "phoneapp", "benchmarks")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO_ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _top_level_imports(path: Path, known: set[str] | None) -> set[str]:
    """The known modules ``path`` imports when it is loaded (``known`` None: every module name, third-party too)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    found: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        for child in ast.walk(node) if isinstance(node, ast.If | ast.Try) else [node]:
            if isinstance(child, ast.Import):
                names = [alias.name for alias in child.names]
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = package.split(".")[: len(package.split(".")) - (child.level - 1)]
                    base = ".".join([*anchor, base] if base else anchor)
                names = [base] + [f"{base}.{alias.name}" for alias in child.names]
            else:
                continue
            for name in names:
                while known is not None and name and name not in known:
                    name = name.rpartition(".")[0]
                if name:
                    found.add(name)
    return found


def _import_graph() -> dict[str, set[str]]:
    files = {_module_name(path): path for package in PACKAGES for path in (REPO_ROOT / package).rglob("*.py")}
    known = set(files)
    return {name: _top_level_imports(path, known) - {name} for name, path in files.items()}


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One circle per strongly connected group of modules (Tarjan), as a readable path."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def test_no_module_imports_one_that_imports_it_back() -> None:
    circles = _circles(_import_graph())
    assert circles == [], f"import circles: {circles}"


def test_tasks_reach_their_services_only_from_inside_the_task() -> None:
    """HackSoft's direction: services import the ``*_task`` names; a task imports its service in its body."""
    graph = _import_graph()
    services_at_load = {name for name in graph["phoneapp.tasks"] if name.startswith("phoneapp.services.")}
    assert services_at_load <= {"phoneapp.services.errors", "phoneapp.services"}, services_at_load


@pytest.mark.parametrize(
    "service", ["phoneapp.services.classification", "phoneapp.services.heatmaps", "phoneapp.services.stored_files"]
)
def test_services_that_dispatch_import_their_tasks_at_load_time(service: str) -> None:
    graph = _import_graph()
    assert {"phoneapp.tasks", "phoneapp.services.dispatch"} <= graph[service]


def _every_import(path: Path) -> set[str]:
    """Every absolute module name ``path`` imports, anywhere in it (lazy imports in functions too)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    names |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    return names


def _offending(folder: Path, forbidden: set[str]) -> dict[str, list[str]]:
    """Modules under ``folder`` importing a name that is, or lies under, one of ``forbidden`` (dotted)."""
    offending = {}
    for path in sorted(folder.rglob("*.py")):
        names = _every_import(path)
        bad = sorted(name for name in names if any(name == top or name.startswith(f"{top}.") for top in forbidden))
        if bad:
            offending[_module_name(path)] = bad
    return offending


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("inference", {"django", "rest_framework", "celery", "phoneapp", "ml_training", "benchmarks"}),
        ("ml_training", {"django", "rest_framework", "celery", "phoneapp", "benchmarks"}),
        ("phoneapp", {"benchmarks"}),
    ],
)
def test_a_lower_layer_never_imports_a_higher_one(package: str, forbidden: set[str]) -> None:
    """``inference`` <- ``ml_training`` <- ``phoneapp`` <- ``benchmarks``, even through a lazy import in a function."""
    assert _offending(REPO_ROOT / package, forbidden) == {}


@pytest.mark.parametrize(
    ("edge", "other"),
    [("phoneapp/web", "phoneapp.api"), ("phoneapp/api", "phoneapp.web")],
)
def test_the_two_edges_never_import_each_other(edge: str, other: str) -> None:
    """Pages and the API are siblings: what both need (the upload rate limit, the login throttle, serving a
    picture, the outage ``Retry-After``) lives below them, so changing one edge cannot break the other."""
    assert _offending(REPO_ROOT / edge, {other}) == {}


def test_the_shared_request_rules_import_neither_edge() -> None:
    shared = [
        "throttling.py",
        "login_throttle.py",
        "picture_files.py",
        "errors.py",
        "auth_backends.py",
        "refused_requests.py",
        "request_edges.py",
    ]
    offending = {
        name: bad
        for name in shared
        if (
            bad := sorted(
                n
                for n in _every_import(REPO_ROOT / "phoneapp" / name)
                if n.startswith(("phoneapp.web", "phoneapp.api"))
            )
        )
    }
    assert offending == {}


def test_the_edge_check_sees_an_import_of_the_other_edge(tmp_path: Path) -> None:
    """The checker itself: a lazy import of the forbidden package inside a function is reported."""
    module = tmp_path / "page.py"
    module.write_text("def view():\n    from phoneapp.api.throttling import UploadRateThrottle\n")
    assert _every_import(module) == {"phoneapp.api.throttling"}
