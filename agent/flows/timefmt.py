"""Hubble's ``--time-format`` layouts (Go's time layouts), for printed flow timestamps.

Times print in UTC, as the rest of ``tulle observe`` does, so Go's zone parts read ``Z``
(``Z07:00``) and ``+0000`` (``-0700``).
"""

from __future__ import annotations

import time as _time
from collections.abc import Callable

DEFAULT_TIME_FORMAT = "StampMilli"


def _stamp_milli(secs: int, frac: int) -> str:  # Go "Jan _2 15:04:05.000"
    t = _time.gmtime(secs)
    return f"{_time.strftime('%b', t)} {t.tm_mday:2d} {_time.strftime('%H:%M:%S', t)}" \
        f".{frac // 1_000_000:03d}"


def _rfc3339(digits: int, trim: bool = False) -> Callable[[int, int], str]:
    def fmt(secs: int, frac: int) -> str:
        base = _time.strftime("%Y-%m-%dT%H:%M:%S", _time.gmtime(secs))
        if not digits:
            return base + "Z"
        part = f"{frac:09d}"[:digits]
        if trim:  # Go's RFC3339Nano (".999999999") drops trailing zeros, and the dot
            part = part.rstrip("0")
        return f"{base}.{part}Z" if part else base + "Z"
    return fmt


def _rfc1123z(secs: int, frac: int) -> str:  # Go "Mon, 02 Jan 2006 15:04:05 -0700"
    return _time.strftime("%a, %d %b %Y %H:%M:%S +0000", _time.gmtime(secs))


TIME_FORMATS: dict[str, Callable[[int, int], str]] = {
    "StampMilli": _stamp_milli,
    "RFC3339": _rfc3339(0),
    "RFC3339Milli": _rfc3339(3),
    "RFC3339Micro": _rfc3339(6),
    "RFC3339Nano": _rfc3339(9, trim=True),
    "RFC1123Z": _rfc1123z,
}


def format_time_as(ns: int, layout: str = DEFAULT_TIME_FORMAT) -> str:
    """`ns` (since the epoch) in Hubble's `layout`; "N/A" for no time."""
    if layout not in TIME_FORMATS:
        raise ValueError(f"unknown time format {layout!r} (choose {', '.join(TIME_FORMATS)})")
    if ns <= 0:
        return "N/A"
    secs, frac = divmod(ns, 1_000_000_000)
    return TIME_FORMATS[layout](secs, frac)
