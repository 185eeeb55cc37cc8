"""C struct layouts packed from Python values, without a ctypes object per entry.

A :class:`Packer` reads the field offsets and widths of a ctypes struct (BCC's
``table.Key``/``table.Leaf``) and writes those fields with one ``struct`` call, every other
byte zero (as a fresh ctypes value is). A struct whose integer fields are all in network
order (``__be32`` addresses, ``__be16`` ports, single bytes) is packed big-endian from plain
ints; a nested struct is written as its memory image (``raw``). ``interleave`` builds many
records at once a field at a time from column buffers (byte-strided copies).
"""

from __future__ import annotations

import ctypes
import struct
from collections.abc import Collection, Sequence
from typing import Any

_INT_CODES = {1: "B", 2: "H", 4: "I", 8: "Q"}


class Packer:
    """Writes the named fields of a ctypes struct (dotted paths into nested structs, listed
    in offset order) with one ``struct`` call; fields named in ``raw`` take their memory
    image as bytes, the others an integer, in native order or, ``network``, big-endian;
    bytes of unnamed fields stay zero."""

    def __init__(self, ctype: Any, fields: Sequence[str], raw: Collection[str] = (),
                 network: bool = False) -> None:
        self.size = ctypes.sizeof(ctype)
        self.offsets: list[int] = []  # of each field, in order
        self.widths: list[int] = []
        fmt, at = ">" if network else "=", 0
        for path in fields:
            offset, ftype = field_at(ctype, path)
            width = ctypes.sizeof(ftype)
            self.offsets.append(offset)
            self.widths.append(width)
            if offset < at:
                raise ValueError(f"{ctype.__name__}.{path}: fields must be listed in offset order")
            if path in raw:
                code = f"{width}s"
            elif issubclass(ftype, ctypes._SimpleCData) and width in _INT_CODES:
                signed = ftype(-1).value < 0
                code = _INT_CODES[width].lower() if signed else _INT_CODES[width]
            else:
                raise TypeError(f"{ctype.__name__}.{path} is not an integer: name it in raw")
            fmt += (f"{offset - at}x" if offset > at else "") + code
            at = offset + width
        fmt += f"{self.size - at}x" if self.size > at else ""
        self.struct = struct.Struct(fmt)
        assert self.struct.size == self.size, (ctype, fmt)
        self.pack = self.struct.pack
        self.pack_into = self.struct.pack_into


def field_at(ctype: Any, path: str) -> tuple[int, Any]:
    """The offset and ctypes type of a dotted field path inside ``ctype``."""
    offset, current = 0, ctype
    for name in path.split("."):
        types = {f[0]: f[1] for f in getattr(current, "_fields_", ())}
        if name not in types:
            raise KeyError(f"{current.__name__} has no field {name!r}")
        offset += getattr(current, name).offset
        current = types[name]
    return offset, current


def interleave(size: int, count: int, fields: Sequence[tuple[int, int, bytes]]) -> bytearray:
    """``count`` records of ``size`` bytes; each field (offset, width, source) takes its
    ``width`` bytes of record i from ``source[i * width:(i + 1) * width]``; the other bytes
    are zero. One strided copy per byte of a field."""
    out = bytearray(size * count)
    for offset, width, source in fields:
        if len(source) != width * count:
            raise ValueError(f"a field of {width} bytes needs {width * count}, got {len(source)}")
        for byte in range(width):
            out[offset + byte::size] = source[byte::width]
    return out
