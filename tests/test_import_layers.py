"""The layers stay layers: ``inference`` ← ``ml_training`` ← ``phoneapp``, and ``inference`` has no import cycle.

Module-level imports are read from the source (imports inside functions and under ``TYPE_CHECKING`` are the
deliberate lazy ones and do not form cycles at import time).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


def module_level_imports(path: Path) -> set[str]:
    """Names of the modules ``path`` imports when it is imported."""
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        for child in [node] if not isinstance(node, ast.Try) else node.body:
            if isinstance(child, ast.Import):
                found.update(alias.name for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
                found.add(child.module)
                found.update(f"{child.module}.{alias.name}" for alias in child.names)
    return found


def package_modules(package: str) -> dict[str, set[str]]:
    modules = {}
    for path in sorted((REPO_ROOT / package).rglob("*.py")):
        name = ".".join(path.relative_to(REPO_ROOT).with_suffix("").parts).removesuffix(".__init__")
        modules[name] = module_level_imports(path)
    return modules


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("inference", ("django", "phoneapp", "ml_training", "rest_framework", "celery")),
        ("ml_training", ("django", "phoneapp")),
    ],
)
def test_a_lower_layer_never_imports_a_higher_one(package: str, forbidden: tuple[str, ...]) -> None:
    offending = {
        module: sorted(name for name in imports if name.split(".")[0] in forbidden)
        for module, imports in package_modules(package).items()
    }
    assert {module: names for module, names in offending.items() if names} == {}


def test_inference_has_no_import_cycle() -> None:
    modules = package_modules("inference")
    graph = {
        module: {name for name in imports if name in modules and name != module} for module, imports in modules.items()
    }
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done

    def visit(module: str, path: list[str]) -> list[str] | None:
        state[module] = 1
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                return [*path, module, target]
            if target not in state and (cycle := visit(target, [*path, module])):
                return cycle
        state[module] = 2
        return None

    for module in sorted(graph):
        if module not in state:
            assert visit(module, []) is None, "import cycle"
