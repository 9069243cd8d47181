"""What every community-config model shares: unknown keys refused, messages that stand alone."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from pydantic_core import PydanticCustomError

SLUG_PATTERN = r"^[a-z0-9]([a-z0-9_-]*[a-z0-9])?$"


class SettingError(Exception):
    """A setting the config file names but the machine or the environment does not
    provide (a secret's variable, a logo file, a package)."""


def _error(message: str) -> PydanticCustomError:
    # the type name is what check-config prints before nothing: the message stands alone
    return PydanticCustomError("twoi2c", message)


class Strict(BaseModel):
    """Every model forbids unknown keys, so a typo (`alowed_groups`) is an error with its
    path instead of a setting silently ignored, which for `allowed_groups` would open a
    profile to everyone."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, use_attribute_docstrings=True)


def _check_groups(groups: list[str] | None) -> list[str] | None:
    if groups is not None and not groups:
        raise _error(
            "an empty allowed_groups offers this to nobody; remove the key to offer it to everyone, or name the groups"
        )
    return groups
