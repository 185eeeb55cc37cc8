"""Maglev consistent-hash lookup tables (Eisenbud et al., NSDI '16, section 3.4).

A service's table has ``M`` slots, each naming one backend. The datapath hashes a flow's
5-tuple to a slot, so a lookup is one array read however many backends there are, and
every node that builds the table from the same backend names builds the same table.

Each backend derives a preference list over the slots from two independent hashes of its
name: ``offset = h1(name) mod M`` and ``skip = h2(name) mod (M - 1) + 1``; its j-th
preference is ``(offset + j * skip) mod M``. Backends then take turns, in name order,
claiming their most preferred slot that is still empty, until the table is full. Every
backend therefore owns ``floor(M/N)`` or ``ceil(M/N)`` slots, and when a backend leaves,
the others keep almost all of their slots: mostly only the leaver's slots are handed on.

Determinism: the hashes are BLAKE2b (never Python's salted ``hash()``), and the backends
are sorted by name before the fill, so the table depends only on the *set* of names. The
returned indices refer to the caller's sequence, in whatever order it was given.
"""

from __future__ import annotations

import hashlib
from array import array
from collections.abc import Iterable, Iterator, Sequence
from fractions import Fraction
from ipaddress import IPv4Address
from itertools import filterfalse
from typing import TYPE_CHECKING, overload

if TYPE_CHECKING:
    from agent.datapath.maglev_native import Fill, Tables

MAGLEV_SIZE = 1021
"""Slots per service table.

It must be prime: ``skip`` is then coprime to ``M`` for every value in ``1..M-1``, so each
backend's preference list visits every slot exactly once.

The trade-off is memory against smoothness. A table costs ``4 * M`` bytes in the kernel
(u32 backend ids), so 1021 slots fit one 4 KiB page and 10,000 services cost about 40 MiB;
Cilium's default of 16381 would cost 16 times that. In exchange, the share of each backend
can differ by one slot (``N/M``: 1% at 10 backends, 10% at 100), and a backend change moves
a few more slots than the ideal ``M/N``, both growing with ``N/M``. The paper advises
``M >= 100 * N``, which 1021 meets up to 10 backends; larger services stay correct and still
consistent, but less even. A service with many hundreds of backends wants a larger prime.

Measured at 1021 over random address names (N from 2 to 20, 120,000 removals): removing
one backend moves 1.3 * M/N slots at the median and 1.9 * M/N at the 99th percentile (the
ideal is exactly M/N, the leaver's own slots). About 0.4% of removals move more than
2 * M/N, at worst 3.3 * M/N, nearly always because two survivors drew equal or opposite
skips: they walk the same cycle in lock step and trade slots between them. A larger M makes
that rarer. ``bpf/lib/lb.h`` has the same number as ``LB_MAGLEV_SIZE``.
Adding a backend is the same change read backwards.
"""

_OFFSET_PERSON = b"tulle-mglv-offs"
_SKIP_PERSON = b"tulle-mglv-skip"


def maglev_table(backends: Sequence[str], size: int = MAGLEV_SIZE) -> tuple[int, ...]:
    """Return the Maglev lookup table for ``backends`` as indices into ``backends``.

    ``size`` must be a prime larger than the number of backends, and names must be unique.
    No backends give the empty table. The table depends only on the set of names, not on
    their order in ``backends``.
    """
    return tuple(maglev_slots(backends, size))


def maglev_slots(backends: Sequence[str], size: int = MAGLEV_SIZE) -> array:
    """``maglev_table`` in 2 bytes a slot; the population loop runs in C where it can
    (agent.datapath.maglev_native), else in Python: the same table either way."""
    n = len(backends)
    if not _is_prime(size):
        raise ValueError(f"Maglev table size must be prime, got {size}")
    if size <= n:
        raise ValueError(f"Maglev table size {size} must exceed the number of backends ({n})")
    if len(set(backends)) != n:
        raise ValueError("Maglev backend names must be unique")
    if n == 0:
        return array("H")
    order = sorted(range(n), key=backends.__getitem__)
    if n == 1:
        return array("H", order) * size
    prefs = [_permutation(backends[i], size) for i in order]
    fill = _native()
    if fill is not None:
        return fill(prefs, order, size)
    marks = [-1, *order]  # table mark k + 1 -> caller's index of the k-th name in order
    return array("H", map(marks.__getitem__, _fill(prefs, size)))


def weighted_maglev_slots(
    backends: Sequence[str], weights: Sequence[Fraction], size: int = MAGLEV_SIZE
) -> array:
    """A Maglev table in which each backend owns a share of the slots proportional to its
    weight (a Gateway route's backendRef weights): ``quotas`` gives each its count, within
    one slot of ``size * weight / total``; then the backends take turns in name order, as
    in ``maglev_slots``, each claiming its next preferred empty slot until its quota is
    reached. The table still depends only on the (name, weight) set, and a change of one
    weight moves slots mostly between that backend and the others. Weight 0 gets no slot.
    Returns indices into ``backends``; every weight 0 gives the empty table."""
    n = len(backends)
    if len(weights) != n or len(set(backends)) != n:
        raise ValueError("Maglev backends need unique names and one weight each")
    if not _is_prime(size):
        raise ValueError(f"Maglev table size must be prime, got {size}")
    counts = quotas(weights, size)
    if not any(counts):
        return array("H")
    order = sorted((i for i in range(n) if counts[i]), key=backends.__getitem__)
    table = [-1] * size
    walks = {i: _walk(*_permutation(backends[i], size), size) for i in order}
    left = {i: counts[i] for i in order}
    while left:
        for i in order:
            if i not in left:
                continue
            slot = next(s for s in walks[i] if table[s] < 0)
            table[slot] = i
            left[i] -= 1
            if not left[i]:
                del left[i]
    return array("H", table)


def quotas(weights: Sequence[Fraction], size: int = MAGLEV_SIZE) -> list[int]:
    """Slots per backend by the largest-remainder method: they sum to ``size`` (unless every
    weight is 0) and each differs from ``size * weight / total`` by less than one slot."""
    total = sum(weights, Fraction(0))
    if total <= 0:
        return [0] * len(weights)
    exact = [size * w / total for w in weights]
    counts = [int(e) for e in exact]
    by_remainder = sorted(range(len(weights)), key=lambda i: (-(exact[i] - counts[i]), i))
    for i in by_remainder[: size - sum(counts)]:
        counts[i] += 1
    return counts


def _walk(offset: int, skip: int, size: int) -> Iterator[int]:
    return ((offset + j * skip) % size for j in range(size))


def maglev_tables(
    ips: array, ports: array, counts: Sequence[int], size: int = MAGLEV_SIZE
) -> list[array]:
    """``maglev_slots`` of many backend sets at once, each backend an IPv4 address (an int)
    and a port, named ``"a.b.c.d:port"`` (``str(IPv4Address(ip))``). Set ``i`` is the next
    ``counts[i]`` entries of ``ips`` ("I") and ``ports`` ("H"); its table indexes them.

    In C where it can be (agent.datapath.maglev_native: names, hashes and fill, a chunk of
    sets per call, without the GIL), else ``maglev_slots`` per set: the same tables."""
    if not _is_prime(size):
        raise ValueError(f"Maglev table size must be prime, got {size}")
    native = _native_tables()
    if native is None:
        return list(_python_tables(ips, ports, counts, size))
    tables: list[array] = []
    start = 0
    for first in range(0, len(counts), _CHUNK):
        chunk = counts[first : first + _CHUNK]
        end = start + sum(chunk)
        filled = array("I", [n for n in chunk if n])
        try:
            flat = native(ips[start:end], ports[start:end], filled, size)
        except ValueError:  # the Python code names what is wrong
            tables += _python_tables(ips[start:end], ports[start:end], chunk, size)
        else:
            at = 0
            for n in chunk:
                if n:
                    tables.append(flat[at : at + size])
                    at += size
                else:
                    tables.append(array("H"))
        start = end
    return tables


_CHUNK = 512  # sets per C call: its output (1 MB) is copied out table by table


def _python_tables(
    ips: array, ports: array, counts: Sequence[int], size: int
) -> Iterator[array]:
    start = 0
    for n in counts:
        names = [f"{IPv4Address(ip)}:{port}" for ip, port in zip(ips[start : start + n],
                                                                  ports[start : start + n],
                                                                  strict=True)]
        yield maglev_slots(names, size)
        start += n


_NATIVE: list[Fill | None] = []  # [] until looked for: the C loop, or None
_NATIVE_TABLES: list[Tables | None] = []  # likewise, whole tables


def _native() -> Fill | None:
    if not _NATIVE:
        from agent.datapath.maglev_native import native_fill

        _NATIVE.append(native_fill())
    return _NATIVE[0]


def _native_tables() -> Tables | None:
    if not _NATIVE_TABLES:
        from agent.datapath.maglev_native import native_tables

        _NATIVE_TABLES.append(native_tables())
    return _NATIVE_TABLES[0]


class CompactTable(Sequence[int]):
    """A lookup table in 2 bytes a slot (a tuple of ints takes 8): at 10,000 services the
    planner holds 20 MB of tables instead of 80. Compares equal to the same slots in any
    sequence, so it stands in for ``maglev_table``'s tuple."""

    __slots__ = ("_slots",)

    def __init__(self, slots: Iterable[int] = ()) -> None:
        self._slots = array("H", slots)

    @classmethod
    def of(cls, slots: array) -> CompactTable:
        """Wraps ``slots`` (an array of "H", not copied)."""
        table = cls.__new__(cls)
        table._slots = slots
        return table

    def __len__(self) -> int:
        return len(self._slots)

    @overload
    def __getitem__(self, index: int) -> int: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[int]: ...

    def __getitem__(self, index: int | slice) -> int | Sequence[int]:
        return self._slots[index]

    def __iter__(self) -> Iterator[int]:
        return iter(self._slots)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, CompactTable):
            return self._slots == other._slots
        if isinstance(other, Sequence) and not isinstance(other, str | bytes):
            return len(other) == len(self._slots) and all(map(int.__eq__, self._slots, other))
        return NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(self._slots))  # as the equal tuple's

    def __repr__(self) -> str:
        return f"CompactTable({list(self._slots)!r})"


def _permutation(name: str, size: int) -> tuple[int, int]:
    """``(offset, skip)`` of a backend's preference list.

    The two hashes are BLAKE2b with different personalisation strings, which makes them
    independent functions of the name (the paper's h1 and h2).
    """
    data = name.encode()
    offset = hashlib.blake2b(data, digest_size=8, person=_OFFSET_PERSON).digest()
    skip = hashlib.blake2b(data, digest_size=8, person=_SKIP_PERSON).digest()
    return int.from_bytes(offset, "big") % size, int.from_bytes(skip, "big") % (size - 1) + 1


def _fill(prefs: list[tuple[int, int]], size: int) -> list[int]:
    """The paper's population loop: backends take turns claiming their next empty slot.

    Returns the table holding ``i + 1`` for backend ``i`` (0 is "empty" while filling).
    Each backend's preference list is a lazy iterator filtered to empty slots; as it reads
    the table while it is being filled, each ``next()`` skips slots taken meanwhile by
    others. The walk runs in C (``range``, ``map``, ``filterfalse``): at most ``N * M``
    probes for the whole table, and one Python step per claimed slot.
    """
    table = [0] * size
    free = [
        filterfalse(table.__getitem__, map(size.__rmod__, range(off, off + size * skip, skip)))
        for off, skip in prefs
    ]
    turns = list(zip(free, range(1, len(prefs) + 1), strict=True))
    for _ in range(size // len(prefs)):
        for slots, mark in turns:
            table[next(slots)] = mark
    for slots, mark in turns[: size % len(prefs)]:
        table[next(slots)] = mark
    return table


def _is_prime(value: int) -> bool:
    if value < 2:
        return False
    if value % 2 == 0:
        return value == 2
    divisor = 3
    while divisor * divisor <= value:
        if value % divisor == 0:
            return False
        divisor += 2
    return True
