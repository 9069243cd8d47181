"""The hub's values as `convert` reads them, and the notes it leaves.

`Values` counts which paths were read, so that every path nothing converted is listed as a
`Note` with the reason, never silently dropped.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..config.yamlfile import one_line

_MISSING = object()
# notes `convert` lists (2i2c's hubs leave at most 211); past these, how many more
MAX_NOTES_LISTED = 1_000


@dataclass
class Note:
    """A path of the values and what became of it (not converted, and why; or a problem of
    the original hub)."""

    path: str
    what: str

    def __post_init__(self) -> None:
        # one line each, wherever it is written (a comment of the converted file included):
        # a key of the values with a newline in it must not add a line to the config
        self.path, self.what = one_line(self.path), one_line(self.what)

    def __str__(self) -> str:
        return f"{self.path}: {self.what}"


def listed(notes: list[Note]) -> list[str]:
    """The notes as `convert` lists them: at most `MAX_NOTES_LISTED`, then how many more."""
    lines = [str(note) for note in notes[:MAX_NOTES_LISTED]]
    if len(notes) > MAX_NOTES_LISTED:
        lines.append(f"… and {len(notes) - MAX_NOTES_LISTED:,} more paths, not listed")
    return lines


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

    def unread(self) -> Iterator[str]:
        """The leaf paths nothing read (a read map counts for all beneath it), one at a time."""

        def walk(node: Any, path: str) -> Iterator[str]:
            if path and any(path == r or path.startswith(r + ".") for r in self.read):
                return
            if isinstance(node, dict) and node:
                for key, value in node.items():
                    yield from walk(value, f"{path}.{key}" if path else str(key))
            else:
                yield path

        return walk(self.data, "")
