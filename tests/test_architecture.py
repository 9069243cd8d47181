"""The package's import graph flows one way, no module grows past 400 lines, and no test
module imports another (what tests share is in conftest.py or a helper module)."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parent.parent / "twoi2c_hub"

# part -> the parts of the package it may import (itself always)
ALLOWED = {
    "catalog": set(),
    "accounting": {"catalog"},
    "config": {"catalog", "paths", "network", "usage_client", "spawners", "authenticators", "markdown"},
    "authenticators": set(),
    "spawners": {"catalog", "paths", "usage_client"},
    "services": {"accounting", "catalog", "config", "paths"},
    "usage_client": set(),
    "markdown": set(),  # the community's words rendered safely: a leaf, like paths
    "replicate": {"accounting", "config", "paths"},  # archives, forgetting, converting values
}


def part_of(path: Path) -> str:
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


def imported_parts(path: Path) -> set[str]:
    """The parts of the package a module imports (absolute or relative)."""
    relative = path.relative_to(PACKAGE.parent).with_suffix("")
    package = list(relative.parts[:-1]) if relative.name != "__init__" else list(relative.parts[:-1])
    targets = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                if node.module:
                    targets.append(base + node.module.split("."))
                else:
                    targets.extend(base + [alias.name] for alias in node.names)
            elif node.module:
                targets.append(node.module.split("."))
        elif isinstance(node, ast.Import):
            targets.extend(alias.name.split(".") for alias in node.names)
    return {t[1] for t in targets if t[0] == "twoi2c_hub" and len(t) > 1}


MODULES = sorted(p for p in PACKAGE.rglob("*.py") if "migrations" not in p.parts)


@pytest.mark.parametrize(
    "path", [p for p in MODULES if part_of(p) in ALLOWED], ids=lambda p: str(p.relative_to(PACKAGE))
)
def test_imports_flow_one_way(path):
    part = part_of(path)
    upward = imported_parts(path) - ALLOWED[part] - {part}
    assert not upward, f"{path.relative_to(PACKAGE)} imports {sorted(upward)}"


def test_services_never_import_each_others_handlers():
    services = PACKAGE / "services"
    for path in services.rglob("*.py"):
        own = path.relative_to(services).parts[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 2 and node.module:
                assert node.module.split(".")[0] in ("framework", own), f"{path} imports {node.module}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_over_400_lines(path):
    assert len(path.read_text().splitlines()) <= 400


def test_no_test_module_imports_another():
    tests = Path(__file__).parent
    for path in sorted(tests.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module]
            for name in names:
                assert not name.split(".")[0].startswith("test_"), f"{path.name} imports {name}"
