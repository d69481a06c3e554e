"""The package's layers, enforced: the pure domain does no I/O, and no module imports from a layer above its own.

Layers, lowest first (README "Architecture"): base (errors, caller, validation, yaml_source) < knowledge < domain <
fhir, hooks, settings < security, store, migrations < runtime, report < answer, repeat_alerts < http, cli,
store_commands.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "cds_service"
LAYERS: dict[str, int] = {
    "__init__": 0,
    "errors": 0,
    "caller": 0,
    "validation": 0,
    "yaml_source": 0,
    "cpu_limit": 0,
    "knowledge": 1,
    "domain": 2,
    "fhir": 3,
    "hooks": 3,
    "settings": 3,
    "security": 4,
    "store": 4,
    "migrations": 4,
    "runtime": 5,
    "report": 5,
    "safety": 5,
    "answer": 6,
    "repeat_alerts": 6,
    "http": 7,
    "server": 7,
    "cli": 7,
    "store_commands": 7,
    "__main__": 7,
}
IO_LIBRARIES = ("flask", "werkzeug", "requests", "urllib3", "sqlalchemy", "yaml", "marshmallow")
MODULES = sorted(PACKAGE.rglob("*.py"))


def _unit(path: Path) -> str:
    """The layer unit of a module: its sub-package, or its own name at the top level."""
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


def _imports(path: Path) -> list[str]:
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
            if node.module == "cds_service":  # `from cds_service import x`: x is a module, or __version__
                found += [f"cds_service.{alias.name}" for alias in node.names if alias.name != "__version__"]
    return found


def test_every_module_has_a_layer() -> None:
    assert {_unit(path) for path in MODULES} <= set(LAYERS)


@pytest.mark.parametrize("path", MODULES, ids=[str(p.relative_to(PACKAGE)) for p in MODULES])
def test_no_module_imports_from_a_layer_above_its_own(path: Path) -> None:
    own = LAYERS[_unit(path)]
    above = [name for name in _imports(path) if name.startswith("cds_service.") and LAYERS[name.split(".")[1]] > own]
    assert above == [], f"{path.name} (layer {own}) imports from above: {above}"


PURE = [p for p in MODULES if _unit(p) == "domain"] + [PACKAGE / "knowledge" / "model.py"]


@pytest.mark.parametrize("path", PURE, ids=[str(p.relative_to(PACKAGE)) for p in PURE])
def test_the_domain_and_the_knowledge_model_do_no_io(path: Path) -> None:
    io = [name for name in _imports(path) if name.split(".")[0] in IO_LIBRARIES]
    assert io == [], f"{path.name} imports {io}"


def test_the_layer_check_sees_an_upward_import(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("from cds_service.http.app import create_app\nimport flask\n")
    assert "cds_service.http.app" in _imports(module) and "flask" in _imports(module)


@pytest.mark.parametrize("path", MODULES, ids=[str(p.relative_to(PACKAGE)) for p in MODULES])
def test_modules_and_functions_stay_small(path: Path) -> None:
    text = path.read_text()
    assert text.count("\n") <= 400, f"{path.name} has over 400 lines"
    long = [
        f"{node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for node in ast.walk(ast.parse(text))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno
        and node.end_lineno - node.lineno + 1 > 60
    ]
    assert long == []
