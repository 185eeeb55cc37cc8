"""ctypes for a map's key and value from BCC's JSON type description, without BCC.

BCC describes each table's key and leaf type as JSON (``bpf_table_key_desc``): a scalar is
its C name (``"unsigned int"``); a struct or union is ``[name, [field, ...], kind]`` with kind
``"struct"``, ``"struct_packed"`` or ``"union"``; a field is ``[name, type]``,
``[name, type, [n]]`` (an array), ``[name, type, bits]`` (a bit field) or a nested struct
(``[name, [fields], kind]``, anonymous when its name is ""). ``decode`` builds the same ctypes
BCC's ``BPF._decode_table_type`` does, so a datapath adopted from its pins (``templates``)
fills the very layouts a compiled one would; the BPF tier checks the two agree field by field.
"""

from __future__ import annotations

import ctypes
from pathlib import Path
from typing import Any

SCALARS: dict[str, Any] = {
    "_Bool": ctypes.c_bool,
    "char": ctypes.c_char,
    "wchar_t": ctypes.c_wchar,
    "unsigned char": ctypes.c_ubyte,
    "short": ctypes.c_short,
    "unsigned short": ctypes.c_ushort,
    "int": ctypes.c_int,
    "unsigned int": ctypes.c_uint,
    "long": ctypes.c_long,
    "unsigned long": ctypes.c_ulong,
    "long long": ctypes.c_longlong,
    "unsigned long long": ctypes.c_ulonglong,
    "float": ctypes.c_float,
    "double": ctypes.c_double,
    "long double": ctypes.c_longdouble,
    "__int128": ctypes.c_int64 * 2,
    "unsigned __int128": ctypes.c_uint64 * 2,
}
_KINDS = ("struct", "struct_packed", "union")


class TypeDescError(ValueError):
    """A description this decoder does not read; the message names the offending part."""


def decode(desc: Any) -> Any:
    """The ctypes type for one description (a scalar type or a Structure/Union class)."""
    if isinstance(desc, str):
        try:
            return SCALARS[desc]
        except KeyError:
            raise TypeDescError(f"unknown scalar type {desc!r}") from None
    if not (isinstance(desc, list) and len(desc) in (2, 3) and isinstance(desc[0], str)
            and isinstance(desc[1], list)):
        raise TypeDescError(f"not a type description: {desc!r}")
    kind = desc[2] if len(desc) == 3 else "struct"
    if kind not in _KINDS:
        raise TypeDescError(f"{desc[0]!r}: unknown kind {kind!r}")
    anonymous: list[str] = []
    fields = [_field(f, anonymous, desc[0]) for f in desc[1]]
    body: dict[str, Any] = {"_anonymous_": anonymous, "_fields_": fields}
    if kind == "struct_packed":
        body["_pack_"] = 1
    base = ctypes.Union if kind == "union" else ctypes.Structure
    return type(desc[0], (base,), body)


def _field(f: Any, anonymous: list[str], owner: str) -> tuple[Any, ...]:
    if not (isinstance(f, list) and len(f) in (2, 3) and isinstance(f[0], str)):
        raise TypeDescError(f"{owner!r}: not a field description: {f!r}")
    if len(f) == 2:
        return (f[0], decode(f[1]))
    extra = f[2]
    if isinstance(extra, list) and len(extra) == 1 and isinstance(extra[0], int):
        return (f[0], decode(f[1]) * extra[0])
    if isinstance(extra, int) and not isinstance(extra, bool):
        return (f[0], decode(f[1]), extra)
    if extra in _KINDS:  # a nested struct or union: the field is itself a description
        name = f[0] or f"__anon{len(anonymous)}"
        if not f[0]:
            anonymous.append(name)
        return (name, decode(f))
    raise TypeDescError(f"{owner!r}: cannot decode field {f!r}")


def possible_cpus(path: Path = Path("/sys/devices/system/cpu/possible")) -> int:
    """How many CPUs a per-CPU map holds a value for (``0-3`` or ``0,2-5``), as BCC counts."""
    count = 0
    for part in path.read_text().strip().split(","):
        first, _, last = part.partition("-")
        count += int(last or first) - int(first) + 1
    return count


def per_cpu_leaf(single: Any, cpus: int) -> Any:
    """A per-CPU map's value: one ``single`` per CPU, each slot 8-byte aligned by the kernel.
    Like BCC: unaligned ``int``/``unsigned int`` widen to 64 bits, other unaligned types are
    refused."""
    if ctypes.sizeof(single) % 8 == 0:
        return single * cpus
    if single is ctypes.c_uint:
        return ctypes.c_uint64 * cpus
    if single is ctypes.c_int:
        return ctypes.c_int64 * cpus
    raise TypeDescError(f"per-CPU value {single.__name__} is not 8-byte aligned")
