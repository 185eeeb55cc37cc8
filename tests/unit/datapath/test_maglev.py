"""maglev_table: the paper's fill, its balance and disruption at Tulle's table size, and
tables that are the same in every process on every node."""

from __future__ import annotations

import hashlib
import os
import random
import re
import statistics
import subprocess
import sys
from collections import Counter
from collections.abc import Sequence
from ipaddress import IPv4Address

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.datapath import maglev
from agent.datapath.cdefs import LIB_DIR
from agent.datapath.maglev import MAGLEV_SIZE, maglev_table

M = MAGLEV_SIZE

address_names = st.builds(
    lambda ip, port: f"{IPv4Address(ip)}:{port}",
    st.integers(0, 2**32 - 1),
    st.integers(1, 65535),
)
any_names = st.one_of(address_names, st.text(min_size=1, max_size=20))


def backend_sets(min_size: int, max_size: int = 20) -> st.SearchStrategy[list[str]]:
    return st.lists(any_names, min_size=min_size, max_size=max_size, unique=True)


def reference_table(backends: Sequence[str], size: int) -> list[int]:
    """Pseudocode 1 of the paper, written plainly: explicit permutations and next[]."""
    order = sorted(range(len(backends)), key=lambda i: backends[i])
    permutation = []
    for i in order:
        offset, skip = maglev._permutation(backends[i], size)
        permutation.append([(offset + j * skip) % size for j in range(size)])
    nexts = [0] * len(order)
    entry = [-1] * size
    filled = 0
    while True:
        for k, i in enumerate(order):
            c = permutation[k][nexts[k]]
            while entry[c] >= 0:
                nexts[k] += 1
                c = permutation[k][nexts[k]]
            entry[c] = i
            nexts[k] += 1
            filled += 1
            if filled == size:
                return entry


def moved_slots(
    old_names: Sequence[str], old: Sequence[int], new_names: Sequence[str], new: Sequence[int]
) -> int:
    return sum(old_names[a] != new_names[b] for a, b in zip(old, new, strict=True))


# --- argument checks and small cases ----------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 4, 1020, 1024, 65536])
def test_size_must_be_prime(size: int) -> None:
    with pytest.raises(ValueError, match="must be prime"):
        maglev_table(["a"], size)


@pytest.mark.parametrize(("count", "size"), [(2, 2), (3, 3), (5, 5), (12, 11)])
def test_size_must_exceed_the_backend_count(count: int, size: int) -> None:
    with pytest.raises(ValueError, match="must exceed the number of backends"):
        maglev_table([f"b{i}" for i in range(count)], size)


def test_backend_names_must_be_unique() -> None:
    with pytest.raises(ValueError, match="unique"):
        maglev_table(["10.0.0.1:80", "10.0.0.2:80", "10.0.0.1:80"])


def test_no_backends_is_the_empty_table() -> None:
    assert maglev_table([]) == ()


def test_table_size_matches_the_bpf_map() -> None:
    match = re.search(r"#define LB_MAGLEV_SIZE (\d+)", (LIB_DIR / "lb.h").read_text())
    assert match and int(match.group(1)) == MAGLEV_SIZE


def test_one_backend_owns_every_slot() -> None:
    assert maglev_table(["10.0.0.1:80"]) == (0,) * M


@given(names=backend_sets(1, 6), size=st.sampled_from([7, 11, 13, 31, 101, 1021]))
def test_fill_matches_the_papers_pseudocode(names: list[str], size: int) -> None:
    if size <= len(names):
        return
    assert list(maglev_table(names, size)) == reference_table(names, size)


# --- determinism ------------------------------------------------------------------------

GOLDEN_NAMES = ["10.0.1.7:8080", "10.0.2.9:8080", "10.0.1.12:8080"]
GOLDEN_PREFIX = (1, 2, 0, 2, 0, 1, 2, 0, 1, 0, 0, 0)
GOLDEN_DIGEST = "9f2109c7d4760200a8c5f93807c0fb08cae19803bea1b7320c54003c9d299b40"


def _digest(table: Sequence[int]) -> str:
    return hashlib.sha256(bytes(table)).hexdigest()


def test_golden_table() -> None:
    """Pins the hashes and the fill. Every node must build the same table from the same
    names, including nodes still running the previous release during an upgrade: a change
    here re-hashes new flows of every service, and needs a release note."""
    table = maglev_table(GOLDEN_NAMES)
    assert table[:12] == GOLDEN_PREFIX
    assert _digest(table) == GOLDEN_DIGEST


def test_same_table_in_processes_with_different_hash_seeds() -> None:
    code = (
        "import hashlib; from agent.datapath.maglev import maglev_table; "
        f"print(hashlib.sha256(bytes(maglev_table({GOLDEN_NAMES!r}))).hexdigest())"
    )
    digests = set()
    for seed in ("1", "2", "random"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        result = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        digests.add(result.stdout.strip())
    assert digests == {_digest(maglev_table(GOLDEN_NAMES))}


@given(names=backend_sets(1), data=st.data())
def test_table_depends_on_the_set_of_names_not_their_order(
    names: list[str], data: st.DataObject
) -> None:
    shuffled = data.draw(st.permutations(names))
    table, other = maglev_table(names), maglev_table(shuffled)
    assert [names[i] for i in table] == [shuffled[i] for i in other]


# --- balance ----------------------------------------------------------------------------


@given(names=backend_sets(1))
def test_every_backend_gets_its_fair_share(names: list[str]) -> None:
    table = maglev_table(names)
    counts = Counter(table)
    n = len(names)
    assert set(counts) == set(range(n))
    # Round-robin turns give floor(M/N) or ceil(M/N) slots each ...
    assert set(counts.values()) <= {M // n, -(-M // n)}
    # ... which is well inside the paper's 10% for N <= 20 at M = 1021.
    assert all(abs(count - M / n) <= 0.1 * M / n for count in counts.values())


# --- disruption -------------------------------------------------------------------------
#
# Maglev promises "minimal", not "ideal", disruption. With M = 1021 a change of one backend
# moves 1.3 * M/N slots at the median, 1.9 * M/N at p99 and about 3 * M/N at worst (two
# backends with equal or opposite skips trade slots). The hard bounds below sit above the
# worst case measured over 120,000 random sets; the corpus test checks the typical case.
# Hard bounds on an empirical tail are derandomized so that CI is reproducible.

HARD_MOVED = 4.0  # x M/N
HARD_SURVIVOR_MOVED = 0.35  # x M


@settings(derandomize=True, max_examples=200)
@given(names=backend_sets(2), data=st.data())
def test_removing_a_backend_moves_mostly_its_own_slots(
    names: list[str], data: st.DataObject
) -> None:
    gone = data.draw(st.sampled_from(names))
    rest = [name for name in names if name != gone]
    old, new = maglev_table(names), maglev_table(rest)
    n = len(names)
    own = sum(names[i] == gone for i in old)
    moved = moved_slots(names, old, rest, new)
    assert moved >= own  # every slot of the leaver moves, by construction
    assert moved <= HARD_MOVED * M / n
    assert moved - own <= HARD_SURVIVOR_MOVED * M


@settings(derandomize=True, max_examples=200)
@given(names=backend_sets(1, 19), newcomer=address_names)
def test_adding_a_backend_moves_mostly_slots_to_it(names: list[str], newcomer: str) -> None:
    if newcomer in names:
        return
    grown = [*names, newcomer]
    old, new = maglev_table(names), maglev_table(grown)
    n = len(grown)
    taken = sum(grown[i] == newcomer for i in new)
    moved = moved_slots(names, old, grown, new)
    assert taken in (M // n, -(-M // n))
    assert moved <= HARD_MOVED * M / n
    assert moved - taken <= HARD_SURVIVOR_MOVED * M


def test_typical_disruption_over_a_fixed_corpus() -> None:
    """1,000 random removals, N from 2 to 20: the typical case is close to ideal."""
    rng = random.Random(20240611)
    ratios, survivor_shares = [], []
    for _ in range(1000):
        count = rng.randint(2, 20)
        names = list(
            {
                f"{IPv4Address(rng.getrandbits(32))}:{rng.randint(1, 65535)}": None
                for _ in range(count)
            }
        )
        gone = rng.randrange(len(names))
        rest = names[:gone] + names[gone + 1 :]
        old, new = maglev_table(names), maglev_table(rest)
        moved = moved_slots(names, old, rest, new)
        ratios.append(moved / (M / len(names)))
        survivor_shares.append((moved - old.count(gone)) / M)
    assert statistics.median(ratios) <= 1.5
    assert sum(r <= 2.0 for r in ratios) >= 0.98 * len(ratios)
    assert statistics.median(survivor_shares) <= 0.05


def test_compact_table_stands_in_for_the_tuple_at_a_quarter_of_the_memory() -> None:
    import sys

    from agent.datapath.maglev import CompactTable

    table = maglev_table([f"10.0.0.{i}:80" for i in range(10)])
    compact = CompactTable(table)
    assert compact == table and table == compact and list(compact) == list(table)
    assert hash(compact) == hash(table) and compact[3] == table[3] and len(compact) == M
    assert compact != table[:-1] and CompactTable(()) == () and compact != "x"
    assert sys.getsizeof(compact) + sys.getsizeof(compact._slots) < sys.getsizeof(table) / 3
