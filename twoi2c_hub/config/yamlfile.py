"""YAML files other people wrote, read within limits: the community config (`check-config`,
the hub at start) and a hub's values files (`convert`).

PyYAML's safe loader (no Python tags), with its composer counting as it goes: every key,
value, map and list, every alias (`*name`) as all the nodes and text it stands for, and
how deep maps and lists sit inside each other. A file past a limit is refused in one line,
at the line where the limit is passed, before anything is built from it: an alias bomb
("billion laughs") never grows, a file nested ten thousand deep never reaches Python's
recursion limit, and no later walk over the data (the checks, the conversion, a message
quoting a value) meets more than `MAX_NODES` nodes. A value quoted in a message is cut to
`MAX_SHOWN_CHARS` (`shown`).
"""

from __future__ import annotations

import collections.abc
import os
import reprlib
import stat
from pathlib import Path
from typing import Any

import yaml

MiB = 1024 * 1024
MAX_CONFIG_BYTES = 1 * MiB  # a community config (the examples: under 10 KB)
MAX_VALUES_BYTES = 2 * MiB  # one values file (2i2c's largest, an encrypted secrets file: 0.85 MiB)
# keys, values, maps and lists, an alias counted as all it stands for (2i2c's largest
# file: 6,190; basehub's values.yaml: 1,223)
MAX_NODES = 20_000
MAX_ALIASES = 1_000  # aliases in one file (2i2c's files: at most 7)
MAX_DEPTH = 64  # maps and lists inside each other, aliases followed (2i2c's files: at most 16)
MAX_KEY_CHARS = 512  # one key (Kubernetes' longest label key is 317 characters)
MAX_SHOWN_CHARS = 80  # a key or value quoted in a message, cut with "…"
MAX_LINE_CHARS = 1_000  # one line of a message (a path of long keys included), cut with "…"

_MERGE = "tag:yaml.org,2002:merge"


class YamlRefused(Exception):
    """A file that is not read. `where` is "line L, column C: " or ""; `problem` one line;
    `syntax`: not YAML at all (as opposed to YAML past a limit)."""

    def __init__(self, problem: str, mark=None, syntax: bool = False):
        self.where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        self.problem, self.syntax = problem, syntax
        super().__init__(self.where + problem)


def _shortened() -> reprlib.Repr:
    short = reprlib.Repr()
    short.maxstring = short.maxother = MAX_SHOWN_CHARS
    short.maxlevel, short.maxlist, short.maxtuple, short.maxdict, short.maxset = 2, 4, 4, 4, 4
    return short


_SHORT = _shortened()


def shown(value: Any, limit: int = MAX_SHOWN_CHARS) -> str:
    """`value` as a message quotes it: its repr (control characters escaped), at most
    `limit` characters, a cut marked with "…"; never more work than that, however large
    the value (a list an alias repeats a million times included)."""
    text = _SHORT.repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def one_line(text: str, limit: int = MAX_LINE_CHARS) -> str:
    """`text` as one line of a message: control characters (a newline, an escape sequence,
    a right-to-left mark) escaped as Python writes them, at most `limit` characters."""
    text = str(text)
    if not text.isprintable():
        text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def read_text(path: str | os.PathLike, max_bytes: int) -> str:
    """The text of the regular file `path`, at most `max_bytes` of UTF-8, or YamlRefused.
    A directory, a device (/dev/zero) or a pipe is refused before it is opened."""
    try:
        kind = os.stat(path).st_mode
        if not stat.S_ISREG(kind):
            what = "a directory" if stat.S_ISDIR(kind) else "a device, a pipe or a socket"
            raise YamlRefused(f"not a regular file ({what})")
        with Path(path).open("rb") as file:
            data = file.read(max_bytes + 1)
    except OSError as e:
        raise YamlRefused(f"cannot read the file: {e.strerror}") from None
    if len(data) > max_bytes:
        raise YamlRefused(f"larger than {max_bytes // MiB} MiB ({max_bytes:,} bytes): too large to be read")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise YamlRefused(f"not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start:,})") from None


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader counting what it composes; `unique_keys` refuses a key given twice in
    one mapping (PyYAML, like Helm, keeps the last)."""

    def __init__(self, text: str, max_chars: int, unique_keys: bool):
        super().__init__(text)
        self.max_chars, self.unique_keys = max_chars, unique_keys
        self.nodes = self.chars = self.aliases = self.depth = self.reach = 0
        self.sizes: dict[str, tuple[int, int, int]] = {}  # anchor -> (nodes, characters, height)

    def _grow(self, nodes: int, chars: int, reach: int, mark) -> None:
        self.nodes, self.chars, self.reach = self.nodes + nodes, self.chars + chars, max(self.reach, reach)
        if self.nodes > MAX_NODES:
            raise YamlRefused(f"more than {MAX_NODES:,} keys and values (aliases counted as what they repeat)", mark)
        if self.chars > self.max_chars:
            raise YamlRefused(
                f"more than {self.max_chars:,} characters of keys and values (aliases counted as what they repeat)",
                mark,
            )
        if self.reach > MAX_DEPTH:
            raise YamlRefused(f"maps and lists nested more than {MAX_DEPTH} deep", mark)

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_ALIASES:
                raise YamlRefused(f"more than {MAX_ALIASES:,} aliases (*name)", event.start_mark)
            if event.anchor in self.anchors and event.anchor not in self.sizes:
                raise YamlRefused(f"the alias {shown('*' + event.anchor)} is inside what it names", event.start_mark)
            nodes, chars, height = self.sizes.get(event.anchor, (0, 0, 0))
            self._grow(nodes, chars, self.depth + height, event.start_mark)
            return super().compose_node(parent, index)
        text = event.value if isinstance(event, yaml.ScalarEvent) else ""
        if index is None and isinstance(parent, yaml.MappingNode) and len(text) > MAX_KEY_CHARS:
            raise YamlRefused(f"a key of {len(text):,} characters (at most {MAX_KEY_CHARS})", event.start_mark)
        before, outer_reach = (self.nodes, self.chars), self.reach
        self.depth += 1
        self.reach = self.depth
        self._grow(1, len(text), self.depth, event.start_mark)
        node = super().compose_node(parent, index)
        if event.anchor is not None:
            self.sizes[event.anchor] = (self.nodes - before[0], self.chars - before[1], self.reach - self.depth + 1)
        self.depth -= 1
        self.reach = max(outer_reach, self.reach)
        return node

    def construct_object(self, node, deep=False):
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, OverflowError) as e:  # a date like 2001-13-45, an integer of 5,000 digits
            raise YamlRefused(
                f"a value that cannot be read: {' '.join(str(e).split())[:200]}", node.start_mark
            ) from None

    def construct_mapping(self, node, deep=False):
        if self.unique_keys and isinstance(node, yaml.MappingNode):
            seen = set()
            for key_node, _ in node.value:
                if key_node.tag == _MERGE:
                    continue
                key = self.construct_object(key_node, deep=deep)
                if not isinstance(key, collections.abc.Hashable):
                    break  # refused by SafeLoader ("found unhashable key")
                if (type(key), key) in seen:  # (1 and true are two keys)
                    raise YamlRefused(f"the key {shown(key)} is given twice", key_node.start_mark, syntax=True)
                seen.add((type(key), key))
        return super().construct_mapping(node, deep=deep)


def _refusal(e: yaml.YAMLError) -> YamlRefused:
    mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
    problem = getattr(e, "problem", None) or str(e)
    if problem.startswith("but ") and getattr(e, "context", None):  # "expected a single document ..., but found"
        problem = f"{e.context}, {problem}"
    if isinstance(e, yaml.reader.ReaderError):  # a character YAML does not allow (a NUL, ...)
        code = e.character if isinstance(e.character, int) else ord(e.character)
        mark, problem = None, f"character #x{code:04x} at offset {e.position:,} is not allowed in YAML"
    return YamlRefused(" ".join(problem.split()), mark, syntax=True)


def compose(text: str, max_chars: int = MAX_CONFIG_BYTES, unique_keys: bool = True):
    """(the node graph of `text`, the loader to construct it with), within the limits.

    `max_chars`: the file's size limit, which also bounds the text of its keys and values
    with every alias written out: aliases may shorten a file, never make it stand for a
    larger one."""
    try:
        loader = _BoundedLoader(text, max_chars, unique_keys)  # (the reader checks the characters at once)
        return loader.get_single_node(), loader
    except yaml.YAMLError as e:
        raise _refusal(e) from None


def construct(node, loader) -> Any:
    """The data of a node `compose` gave (None for an empty document)."""
    try:
        return None if node is None else loader.construct_document(node)
    except yaml.YAMLError as e:
        raise _refusal(e) from None
    finally:
        loader.dispose()


def load(text: str, max_chars: int = MAX_CONFIG_BYTES, unique_keys: bool = True) -> Any:
    """The data of one YAML document, within the limits, or YamlRefused."""
    return construct(*compose(text, max_chars, unique_keys))
