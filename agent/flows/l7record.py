"""The waypoint's L7 flow record: what it knows of one request, as a flat tuple, its wire
form and its checks (the flow built from it: `agent.flows.l7flow`).

The waypoint appends a record per request and sends them to the node agent in batches, one
JSON line per batch (`encode_batch`); the agent checks each record (`read_batch`) and builds
the flow (`agent.flows.l7flow`). A request's timing marks (`agent.flows.reqsplit.LEAN`) travel
outside the JSON text: the waypoint packs each request's as it records it (`pack_lean`) and
joins a batch's into one column of little-endian int64s (`join_column`) that follows the
line as raw bytes (its size in the line's head: no base64 or hex to encode), and the
record's field 13 only says it has them (``true``), or carries the few marks most requests
do not have (`reqsplit.EXTRA`). A column under the older head key ``marks`` holds
`reqsplit.RAW` integers per timed record (field 13 ``true``). Formatting the marks as
decimal JSON was most of the split's cost on the waypoint (bench/results/request-split-*).
Building flows where they are stored, not where requests are served, keeps the waypoint's
event loop free of per-flow object building and JSON encoding (about 50 µs per request,
bench/results/l7-*).
"""

from __future__ import annotations

import json
import struct
import sys
from array import array
from collections.abc import Iterator, Sequence
from itertools import chain, islice
from typing import Any

from agent.flows.reqsplit import (
    LEAN,
    LEAN_ROW,
    RAW,
    check_extra,
    check_marks,
    raw_of,
    relative,
)

# (time_ns, latency_ns, code, method, url, protocol, route, rule, backend, drop_reason,
#  client (ip, port), local (ip, port), summary, timing marks or None (`l7proxy.timing`;
#  or True: its LEAN marks are in the batch's column; or its EXTRA marks, the LEAN ones
#  in the column; once read (`read_batch`, `with_marks`): the common request's row of
#  the column as bytes (`reqsplit.LEAN_ROW`, split when a reader asks:
#  `TulleInfo.request`), or relative marks (COMPACT, MARKS..MAX_MARKS ints)),
#  policy names or None: the NetworkPolicies ("namespace/name") that allowed the client's
#  egress and the backend's ingress, as ``ConnectionPolicy.allowed_by`` gives them; for a
#  request an AuthorizationPolicy denied (drop reason in AUTHZ_DROPS), no egress names and
#  the AuthorizationPolicies that denied it; a third list, when present and not empty, the
#  AUDIT AuthorizationPolicies that matched a request that was served (the flow's verdict
#  is then AUDIT, naming them in ``ingress_denied_by`` as Hubble does for audited flows);
#  tunnel or None: (client SPIFFE ID, backend SPIFFE ID) when the upstream hop rode an
#  HBONE tunnel (``l7proxy.via``): the flow is encrypted and names both identities;
#  grpc-status or None: what a gRPC client got (from the backend's trailers, or the
#  waypoint's own gRPC error); the flow carries it as an HTTP header, ``grpc-status``
#  (Hubble's HTTP has no gRPC field), beside the url's /<service>/<method> path;
#  records of older waypoints have 15 fields and no tunnel, or 16 and no grpc-status)
PolicyNames = tuple[tuple[str, ...], tuple[str, ...]]
AuditedNames = tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]  # + AUDIT policies
TunnelIds = tuple[str, str]
L7Record = tuple[int, int, int, str, str, str, str, str, str, str, tuple[str, int],
                 tuple[str, int], str, tuple[int, ...] | bytes | bool | None,
                 PolicyNames | AuditedNames | None, TunnelIds | None, int | None]
Column = Sequence[int]  # a batch's timing marks, LEAN per timed record (RAW: older head)
AUTHZ_DROPS = frozenset({"POLICY_DENY", "POLICY_DENIED"})
"""Hubble's drop reasons the waypoint gives an AuthorizationPolicy denial: a matching DENY
policy (POLICY_DENY, Cilium's "denied by denylist"), no matching ALLOW (POLICY_DENIED)."""
_INTS = (0, 1, 2)
GRPC_STATUS = "grpc-status"
"""The header a gRPC request's flow carries its status in (``L7Record`` field 16)."""
_STRS = (3, 4, 5, 6, 7, 8, 9, 12)


# Records are trees of tuples the waypoint built (no cycles): skipping json's check for
# circular references saves ~50 ns per tuple, four per record (the marks' among them).
_encode = json.JSONEncoder(separators=(",", ":"), check_circular=False).encode


# A C long where it is 64 bits (Linux): struct converts a clock reading (two of CPython's
# 30-bit digits) to it ~2.5x faster than to a long long, which takes the generic path.
_INT64 = "l" if struct.calcsize("l") == 8 else "q"


pack_lean = struct.Struct(f"{LEAN}{_INT64}").pack
"""One request's ``LEAN`` marks as its part of the column (native order; `join_column`).
The waypoint packs each request's as it records it: one C call with the integers as
arguments costs less than a tuple of them packed with the batch (callgrind, per request:
~600 instructions against ~1,050 through ``chain`` or ~840 through ``starmap``)."""


def join_column(parts: Sequence[bytes]) -> bytes:
    """A batch's column from its requests' `pack_lean` parts: little-endian on the wire."""
    column = b"".join(parts)
    if sys.byteorder == "little":
        return column
    swapped = array("q", column)
    swapped.byteswap()
    return swapped.tobytes()


def pack_marks(marks: Sequence[tuple[int, ...]], width: int = LEAN) -> bytes:
    """The marks of a batch's timed records (``width`` each) as one binary column, in one
    call: the format's reference encoder (the waypoint packs per request, `pack_lean`)."""
    return join_column([struct.pack(f"{width * len(marks)}{_INT64}",
                                    *chain.from_iterable(marks))])


_HEAD = b'{"split":'  # a LEAN column follows
_OLD_HEAD = b'{"marks":'  # a RAW column follows (waypoints before the LEAN column)
MAX_COLUMN = 1 << 26  # bytes; a batch's column is at most 65,536 records x 88


def encode_batch(records: Sequence[L7Record], column: bytes | None = None) -> bytes:
    """One line: a JSON array of records (tuples become arrays), or with a marks column
    (`join_column`) ``{"split": its size in bytes, "records": [...]}`` and then the column
    as it is (any bytes: the reader takes ``column_size`` of them after the line)."""
    if not column:
        return _encode(records).encode() + b"\n"
    return b"".join((_HEAD, str(len(column)).encode(), b',"records":',
                     _encode(records).encode(), b"}\n", column))


def column_size(line: bytes) -> int:
    """How many bytes of marks column follow a batch line: 0 for none, or for a head that
    does not say a size up to ``MAX_COLUMN`` (the line's check then names it)."""
    if not line.startswith((_HEAD, _OLD_HEAD)):
        return 0
    end = line.find(b",", len(_HEAD))  # both heads are as long
    digits = line[len(_HEAD):end]
    if end < 0 or not digits.isdigit() or len(digits) > 9:
        return 0
    size = int(digits)
    return size if size <= MAX_COLUMN else 0


def decode_column(data: bytes, size: Any) -> array:
    """A batch's marks column as `encode_batch` wrote it, ``size`` bytes by its line
    (ValueError says what is wrong)."""
    if type(size) is not int or size != len(data) or size % 8 or size > MAX_COLUMN:
        raise ValueError(f"a batch's timing marks must be the {size!r} bytes (whole "
                         f"64-bit integers) its line announces, got {len(data)}")
    column = array("q")
    column.frombytes(data)
    if sys.byteorder != "little":
        column.byteswap()
    return column


def _short(column: Column, width: int) -> ValueError:
    return ValueError(f"the batch's timing marks ({len(column)} integers) end before a "
                      f"record's {width}")


def _marks_at(column: Column, at: int, field: Any, width: int = LEAN
              ) -> tuple[int, ...] | bytes:
    """A timed record's marks, relative: ``width`` integers of the column from ``at``
    and, beside a ``LEAN`` column, its field 13 (``true`` or its ``EXTRA`` marks)."""
    if at + width > len(column):
        raise _short(column, width)
    if field is True and width == LEAN:  # the common request: its row, split when read
        return LEAN_ROW.pack(*column[at:at + LEAN])
    if width == RAW:
        return relative(column[at:at + RAW])
    return relative(raw_of(column[at:at + LEAN], check_extra(field)))


def with_marks(records: Sequence[L7Record], column: Column) -> list[L7Record]:
    """The waypoint's records with their marks from the column (for flow sinks in-process)."""
    out: list[L7Record] = []
    at = 0
    for r in records:
        if r[13] is not None:
            r = (*r[:13], _marks_at(column, at, r[13]), *r[14:])  # type: ignore[assignment]
            at += LEAN
        out.append(r)
    return out


_ROW = LEAN_ROW.size  # bytes of a LEAN row on the wire


def read_batch(value: Any, data: bytes = b"") -> Iterator[L7Record | ValueError]:
    """The records of one batch line (and its column's ``data``), in either form, each
    checked: a malformed record (or column) is its ValueError, the others still count."""
    column: array | None = None
    rows: list[bytes] | None = None  # the LEAN column by request, when whole
    width = LEAN
    if isinstance(value, dict):
        items = value.get("records")
        if not isinstance(items, list):
            yield ValueError("a batch's records must be an array")
            return
        if "split" not in value:
            width = RAW  # an older waypoint's column (field 13 true: RAW marks)
        try:
            column = decode_column(data, value.get("split" if width == LEAN else "marks"))
            if width == LEAN and not len(data) % _ROW:
                # each request's row as the bytes it came in (a C slice each): its flow
                # keeps them, split only when read, and the metrics fold them as bytes
                rows = list(map(data.__getitem__, map(slice, range(0, len(data), _ROW),
                                                      range(_ROW, len(data) + 1, _ROW))))
        except ValueError as err:
            yield err
            column = array("q")
    else:
        items = value
    done = 0  # records read by the common batch's loop
    if rows is not None and len(rows) == len(items):
        # Nearly every batch: each record the common timed request, its row at its index
        # (no slot bookkeeping); from the first that is not one, the general loop.
        for item, row in zip(items, rows, strict=True):
            if not (type(item) is list and len(item) in (15, 16, 17) and item[13] is True
                    and type(item[1]) is int):
                break
            try:
                yield _record(item, row)  # split when read (`TulleInfo.request`)
            except ValueError as err:
                yield err
            done += 1
    at = done * width
    for item in islice(items, done, None) if done else items:
        try:
            if (column is not None and isinstance(item, list) and len(item) in (15, 16, 17)
                    and (item[13] is True or width == LEAN and item[13] is not None)):
                here, at = at, at + width  # its slot, even if its marks are bad
                # integers from the column by construction: no check of them as JSON
                if width == LEAN and item[13] is True and rows is not None:
                    if at > len(column):
                        raise _short(column, width)
                    yield _record(item, rows[here // LEAN])  # the common request's row
                else:
                    yield _record(item, _marks_at(column, here, item[13], width))
            else:
                yield record_from_json(item)
        except ValueError as err:
            yield err
    if column is not None and at < len(column):
        yield ValueError(f"the batch's timing marks hold {len(column) - at} integers no "
                         f"record claims")


def _address(value: Any, what: str) -> tuple[str, int]:
    if (not isinstance(value, list | tuple) or len(value) != 2
            or not isinstance(value[0], str) or type(value[1]) is not int):
        raise ValueError(f"{what} must be [ip, port], got {value!r}")
    return value[0], value[1]


def _names(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"policy names must be arrays of strings, got {value!r}")
    return tuple(value)


def _policy_names(value: Any) -> PolicyNames | AuditedNames | None:
    """[[egress names], [ingress names]], with [audited names] after them, or null."""
    if value is None:
        return None
    if not isinstance(value, list) or len(value) not in (2, 3):
        raise ValueError("policy names must be [[egress...], [ingress...]] or "
                         f"[[egress...], [ingress...], [audited...]], got {value!r}")
    if len(value) == 3:
        return _names(value[0]), _names(value[1]), _names(value[2])
    return _names(value[0]), _names(value[1])


def record_from_json(value: Any) -> L7Record:
    """A record as `encode_batch` wrote it, checked field by field (ValueError says which).
    Older waypoints wrote 13 fields (no timing marks), 14 (no policy names), 15 (no
    tunnel) or 16 (no grpc-status)."""
    if not isinstance(value, list) or len(value) not in (13, 14, 15, 16, 17):
        raise ValueError("an L7 record is an array of 17 fields (13 to 16 from older "
                         "waypoints: without timing marks, policy names, tunnel, "
                         "grpc-status)")
    return _record(value, check_marks(value[13]) if len(value) >= 14 else None)


def _record(value: list[Any], marks: tuple[int, ...] | bytes | None) -> L7Record:
    """`record_from_json` of a 13- to 17-field array whose marks are ``marks``, checked."""
    for i in _INTS:
        if type(value[i]) is not int:
            raise ValueError(f"field {i} must be an integer, got {value[i]!r}")
    for i in _STRS:
        if not isinstance(value[i], str):
            raise ValueError(f"field {i} must be a string, got {value[i]!r}")
    client, local = _address(value[10], "client"), _address(value[11], "local")
    names = _policy_names(value[14]) if len(value) >= 15 else None
    tunnel = _tunnel(value[15]) if len(value) >= 16 else None
    grpc = value[16] if len(value) == 17 else None
    if grpc is not None and (type(grpc) is not int or not 0 <= grpc <= 0xFFFF):
        raise ValueError(f"field 16 (grpc-status) must be a small integer or null, got {grpc!r}")
    return (value[0], value[1], value[2], value[3], value[4], value[5], value[6], value[7],
            value[8], value[9], client, local, value[12], marks, names, tunnel, grpc)


def _tunnel(value: Any) -> TunnelIds | None:
    """[client SPIFFE ID, backend SPIFFE ID] or null."""
    if value is None:
        return None
    if (not isinstance(value, list | tuple) or len(value) != 2
            or not all(isinstance(v, str) and v for v in value)):
        raise ValueError(f"a tunnel must be [client SPIFFE ID, backend SPIFFE ID], "
                         f"got {value!r}")
    return value[0], value[1]
