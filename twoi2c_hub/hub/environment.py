"""What a community config names but the hub's machine provides: a secret in an
environment variable, a logo file, an installed package."""

from __future__ import annotations

import os


class SettingError(Exception):
    """A setting the config file names but the machine or the environment does not
    provide (a secret's variable, a logo file, a package)."""


def secret(variable: str, what: str) -> str:
    """The value of the environment variable `variable`, which `what` (a setting's path in
    the config file) needs; a SettingError when it is unset or empty."""
    value = os.environ.get(variable, "")
    if not value:
        raise SettingError(f"{what}: set the environment variable {variable}")
    return value
