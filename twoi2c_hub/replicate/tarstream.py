"""A tar written in one pass to a seekable file, in bounded memory.

A member of unknown size (a table streamed out of the database) is written straight in:
its header's place is kept, and the header is written once the data is there. A member
can also be reserved at the front and filled in last (the manifest, whose counts and
checksums are known only at the end). The result is a plain POSIX (ustar) tar.
"""

from __future__ import annotations

import tarfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO

BLOCK = 512
RECORD = 20 * BLOCK


def _header(name: str, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, int(time.time()), 0o644
    return info.tobuf(tarfile.USTAR_FORMAT, "utf-8", "strict")


def _padding(size: int) -> bytes:
    return b"\0" * (-size % BLOCK)


class TarWriter:
    def __init__(self, file: BinaryIO):
        self.file = file

    def add(self, name: str, data: bytes) -> None:
        self.file.write(_header(name, len(data)) + data + _padding(len(data)))

    def reserve(self, name: str, size: int) -> int:
        """Room for a member of at most `size` bytes, filled in by `fill`."""
        offset = self.file.tell()
        self.file.write(_header(name, size) + b" " * size + _padding(size))
        return offset

    def fill(self, offset: int, data: bytes, size: int) -> None:
        """The reserved member's data, padded with spaces to its size (JSON allows them)."""
        if len(data) > size:
            raise ValueError(f"{len(data)} bytes do not fit the {size} reserved")
        end = self.file.tell()
        self.file.seek(offset + BLOCK)
        self.file.write(data + b" " * (size - len(data)))
        self.file.seek(end)

    @contextmanager
    def member(self, name: str) -> Iterator[BinaryIO]:
        """A member written as it comes: `with writer.member(name) as out: out.write(...)`."""
        start = self.file.tell()
        self.file.write(b"\0" * BLOCK)  # its header, once its size is known
        yield self.file
        end = self.file.tell()
        size = end - start - BLOCK
        self.file.write(_padding(size))
        self.file.seek(start)
        self.file.write(_header(name, size))
        self.file.seek(0, 2)

    def close(self) -> None:
        """The end-of-archive blocks, and the last record filled out."""
        self.file.write(b"\0" * 2 * BLOCK)
        self.file.write(b"\0" * (-self.file.tell() % RECORD))
