"""The package's import graph is the one docs/architecture.md draws, and it flows one way;
no module grows past 400 lines; no test module imports another (what tests share is in
conftest.py or a helper module)."""

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parent.parent / "twoi2c_hub"
ARCHITECTURE = Path(__file__).parent.parent / "docs" / "architecture.md"

# every part of the package (a subpackage or a top-level module) -> the other parts it
# imports. Exactly: an import not listed fails, and so does a listed one that no module of
# the part makes, so this table is the graph itself (docs/architecture.md shows it).
ALLOWED = {
    # the bottom: plain data, pure functions, small helpers
    "catalog": set(),
    "paths": set(),  # where the templates and examples are, installed or not
    "markdown": set(),  # the community's words rendered safely
    "network": set(),  # free ports
    "usage_client": set(),  # the one poster of events to the usage service
    "server_account": set(),  # the unprivileged account local servers run as
    "proxy": set(),  # the Python configurable-http-proxy, unthrottled
    "authenticators": set(),
    "navigation": set(),  # the one menu of the hub's and the services' pages
    "dates": set(),  # dates and numbers on pages, in the reader's locale
    # the data layer and the community config: pure models and loading
    "accounting": {"catalog"},
    "config": {"catalog"},
    "spawners": {"catalog", "dates", "paths", "usage_client"},
    # (replicate: the fleet reads archives)
    "services": {"accounting", "catalog", "config", "dates", "navigation", "paths", "replicate"},
    "replicate": {"accounting", "config"},  # archives, forgetting, converting values
    # the wiring: a community config as JupyterHub's settings
    "hub": {
        "authenticators",
        "catalog",
        "config",
        "dates",
        "markdown",
        "navigation",
        "network",
        "paths",
        "spawners",
        "usage_client",
    },
    "__init__": {"hub"},  # twoi2c_hub.configure, importing the wiring when called
    # the programs
    "localhub": {"network", "server_account"},
    "demo": {"config", "localhub", "paths", "server_account"},
    "cli": {"accounting", "config", "demo", "replicate", "server_account", "services"},
}

MODULES = sorted(PACKAGE.rglob("*.py"))
PARTS = {p.name.removesuffix(".py") for p in PACKAGE.iterdir() if p.suffix == ".py" or (p / "__init__.py").is_file()}


def part_of(path: Path) -> str:
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


def imported_parts(path: Path) -> set[str]:
    """The parts of the package a module imports (absolute or relative); a name imported
    from the package itself (`from twoi2c_hub import configure`) is of `__init__`."""
    package = list(path.relative_to(PACKAGE.parent).parts[:-1])
    targets = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package[: len(package) - (node.level - 1)] if node.level else []
            module = base + (node.module.split(".") if node.module else [])
            targets.extend(module + [alias.name] for alias in node.names)
        elif isinstance(node, ast.Import):
            targets.extend(alias.name.split(".") for alias in node.names)
    return {t[1] if t[1] in PARTS else "__init__" for t in targets if t[0] == "twoi2c_hub" and len(t) > 1}


def test_every_module_belongs_to_a_part_in_the_table():
    assert {part_of(p) for p in MODULES} == set(ALLOWED), "add the new part to ALLOWED (or remove a part that is gone)"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_flow_one_way(path):
    part = part_of(path)
    assert part in ALLOWED, f"{path.relative_to(PACKAGE)}: its part {part} is not in ALLOWED"
    upward = imported_parts(path) - ALLOWED[part] - {part}
    assert not upward, f"{path.relative_to(PACKAGE)} imports {sorted(upward)}"


@pytest.mark.parametrize("part", sorted(ALLOWED))
def test_every_import_in_the_table_is_made(part):
    made = set().union(*(imported_parts(p) for p in MODULES if part_of(p) == part)) - {part}
    unused = ALLOWED[part] - made
    assert not unused, f"no module of {part} imports {sorted(unused)}: remove it from ALLOWED and docs/architecture.md"


def test_the_parts_import_each_other_in_no_cycle():
    done: set[str] = set()

    def visit(part: str, path: tuple[str, ...]) -> None:
        assert part not in path, "a cycle: " + " -> ".join([*path, part])
        if part not in done:
            for imported in ALLOWED[part]:
                visit(imported, (*path, part))
            done.add(part)

    for part in ALLOWED:
        visit(part, ())


def test_the_architecture_doc_draws_this_graph():
    """The table under "Imports" in docs/architecture.md: each row `parts | what they import`."""
    section = ARCHITECTURE.read_text().split("\n## Imports\n")[1].split("\n#")[0]
    drawn = {}
    for row in (line.strip("|").split("|") for line in section.splitlines() if line.startswith("| `")):
        for part in re.findall(r"`(\w+)`", row[0]):
            drawn[part] = set(re.findall(r"`(\w+)`", row[1]))
    assert drawn == ALLOWED


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
