"""Headers: an immutable, ordered multi-dict of HTTP fields that keeps each name's case.

Lookups are case-insensitive (RFC 9110 section 5.1); edits return a new ``Headers``. The
case-insensitive index is built on the first lookup and cached, so a request whose
headers are only matched once pays for one dict build.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

_SET_COOKIE = "set-cookie"
_SCAN_LIMIT = 8


class Headers:
    """HTTP header fields in wire order, names as received."""

    __slots__ = ("_items", "_index")

    _items: tuple[tuple[str, str], ...]
    _index: dict[str, list[str]] | None

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items = tuple(items)
        self._index = None

    @classmethod
    def from_raw(cls, raw: Iterable[tuple[bytes, bytes]]) -> Headers:
        """Headers from wire bytes (ISO-8859-1, as RFC 9110 allows for field values)."""
        return cls((name.decode("latin-1"), value.decode("latin-1")) for name, value in raw)

    def raw(self) -> list[tuple[bytes, bytes]]:
        """The fields as wire bytes, in order."""
        return [(n.encode("latin-1"), v.encode("latin-1")) for n, v in self._items]

    # --- reading -----------------------------------------------------------------------

    def _lookup(self) -> dict[str, list[str]]:
        index = self._index
        if index is None:
            index = {}
            for name, value in self._items:
                index.setdefault(name.lower(), []).append(value)
            self._index = index
        return index

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of ``name``, or ``default``."""
        values = self._lookup().get(name.lower())
        return values[0] if values else default

    def get_all(self, name: str) -> tuple[str, ...]:
        """Every value of ``name``, in order."""
        return tuple(self._lookup().get(name.lower(), ()))

    def combined(self, name: str) -> str | None:
        """The field's combined value (RFC 9110 section 5.3: lines joined with ","), or
        None when absent. This is the value header matches compare against."""
        lower = name.lower()
        if self._index is None and len(self._items) <= _SCAN_LIMIT:
            # A short field list is cheaper to scan than to index.
            found = [v for n, v in self._items if n.lower() == lower]
            return ",".join(found) if found else None
        values = self._lookup().get(lower)
        if not values:
            return None
        return values[0] if len(values) == 1 else ",".join(values)

    def names(self) -> tuple[str, ...]:
        """Distinct field names in first-seen order, as first written."""
        seen: dict[str, str] = {}
        for name, _ in self._items:
            seen.setdefault(name.lower(), name)
        return tuple(seen.values())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._lookup()

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def items(self) -> tuple[tuple[str, str], ...]:
        return self._items

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Headers):
            return self._items == other._items
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._items)

    def __repr__(self) -> str:
        return f"Headers({list(self._items)!r})"

    # --- editing (each returns a new Headers) ------------------------------------------

    def set(self, name: str, value: str) -> Headers:
        """Replace every ``name`` line with one ``name: value`` line, kept where the first
        one was (appended when absent)."""
        lower = name.lower()
        out: list[tuple[str, str]] = []
        placed = False
        for item in self._items:
            if item[0].lower() == lower:
                if not placed:
                    out.append((name, value))
                    placed = True
            else:
                out.append(item)
        if not placed:
            out.append((name, value))
        return Headers(out)

    def add(self, name: str, value: str) -> Headers:
        """Append ``value`` to the field: to its last line after a comma when present
        (``my-header: foo`` + ``bar`` gives ``my-header: foo,bar``), else as a new line.
        Set-Cookie, which cannot be combined, always gets a line of its own."""
        lower = name.lower()
        items = list(self._items)
        if lower != _SET_COOKIE:
            for i in range(len(items) - 1, -1, -1):
                if items[i][0].lower() == lower:
                    items[i] = (items[i][0], f"{items[i][1]},{value}")
                    return Headers(items)
        items.append((name, value))
        return Headers(items)

    def append(self, name: str, value: str) -> Headers:
        """Add a new ``name: value`` line at the end, never combining."""
        return Headers((*self._items, (name, value)))

    def remove(self, *names: str) -> Headers:
        """Drop every line of each of ``names``."""
        lowered = {n.lower() for n in names}
        if not lowered & self._lookup().keys():
            return self
        return Headers(item for item in self._items if item[0].lower() not in lowered)
