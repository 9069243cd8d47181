"""Which interface a server opens in (JupyterLab, the classic Notebook, RStudio), chosen on
the spawn page among those the operator offers, checked against the image: RStudio only
where the image has it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from fnmatch import fnmatchcase

from .profiles import ProfileError


def available(interface: Mapping, image: str | None) -> bool:
    patterns = interface.get("images") or []
    return not patterns or (image is not None and any(fnmatchcase(image, p) for p in patterns))


def chosen(interfaces: Sequence[Mapping], name: object, image: str | None) -> Mapping | None:
    """The interface `name` (None: the first the image has), or a ProfileError (400)."""
    if not interfaces:
        if name is not None:
            raise ProfileError("This hub offers no choice of interface.")
        return None
    if name is None:
        return next((i for i in interfaces if available(i, image)), None)
    found = next((i for i in interfaces if i["name"] == name), None)
    if found is None:
        offered = ", ".join(i["name"] for i in interfaces)
        raise ProfileError(f"There is no interface {name!r} here; choose one of: {offered}.")
    if not available(found, image):
        raise ProfileError(f"{found['display_name']} is not in the image {image}; choose another interface or image.")
    return found
