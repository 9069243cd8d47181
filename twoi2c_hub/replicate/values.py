"""The hub's values as `convert` reads them, and the notes it leaves.

`Values` counts which paths were read, so that every path nothing converted is listed as a
`Note` with the reason, never silently dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

_MISSING = object()


@dataclass
class Note:
    """A path of the values and what became of it (not converted, and why; or a problem of
    the original hub)."""

    path: str
    what: str

    def __str__(self) -> str:
        return f"{self.path}: {self.what}"


class Values:
    """The merged values, and which of their paths were read."""

    def __init__(self, data: dict, prefix: str = ""):
        self.data, self.prefix, self.read = data, prefix, set()

    def peek(self, path: str, default: Any = None) -> Any:
        """The value at `path`, not counted as read (a map only partly converted)."""
        node: Any = self.data
        for key in path.split("."):
            if not isinstance(node, dict) or key not in node:
                return default
            node = node[key]
        return node

    def get(self, path: str, default: Any = None) -> Any:
        """The value at `path`, counted as converted (all of it, if a map)."""
        node = self.peek(path, _MISSING)
        if node is _MISSING:
            return default
        self.read.add(path)
        return node

    def unread(self) -> list[str]:
        """The leaf paths nothing read (a read map counts for all beneath it)."""
        found: list[str] = []

        def walk(node: Any, path: str) -> None:
            if path and any(path == r or path.startswith(r + ".") for r in self.read):
                return
            if isinstance(node, dict) and node:
                for key, value in node.items():
                    walk(value, f"{path}.{key}" if path else str(key))
            else:
                found.append(path)

        walk(self.data, "")
        return found
