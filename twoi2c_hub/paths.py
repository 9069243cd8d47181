"""Where the package's shared files are, in an installed wheel and in a source checkout."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def templates_dir() -> Path:
    """`share/templates`: inside the package when installed from a wheel, at the top of
    the checkout when installed in editable mode."""
    installed = _PACKAGE / "_share" / "templates"
    if installed.is_dir():
        return installed
    return _PACKAGE.parent / "share" / "templates"


def examples_dir() -> Path:
    installed = _PACKAGE / "_share" / "examples"
    if installed.is_dir():
        return installed
    return _PACKAGE.parent / "examples"


def demo_config() -> dict:
    """The demo community's config (examples/demo-community.yaml) as data, its files named
    by absolute paths: for a changed copy written somewhere else (tests, benchmarks)."""
    import yaml

    config = yaml.safe_load((examples_dir() / "demo-community.yaml").read_text())
    hub = config["hub"]
    if hub.get("logo_file"):
        hub["logo_file"] = str(examples_dir() / hub["logo_file"])
    return config
