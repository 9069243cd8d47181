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
