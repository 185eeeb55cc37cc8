"""bench.sockops_ab's pure parts: variant choice, the child's output, per-exchange figures,
medians and the table."""

from __future__ import annotations

import pytest

from bench.sockops_ab import rotated
from bench.sockops_ab_stats import (
    VARIANTS,
    ChildResult,
    figures,
    parse_child,
    pick,
    summarise,
    table,
)


def test_pick_keeps_order_and_names_unknown_variants() -> None:
    assert [v.name for v in pick("c2, a,b2")] == ["c2", "a", "b2"]
    with pytest.raises(ValueError, match=r"\['zz'\].*known: a, b1"):
        pick("a,zz")
    with pytest.raises(ValueError, match="unknown"):
        pick(" , ")


def test_variants_describe_the_lab_and_one_tracer_cases() -> None:
    by = {v.name: v for v in VARIANTS}
    assert by["b2"].probe_copies == 2 and not by["b2"].sockops
    assert by["c2"].sockops and by["c2"].sockops_server and by["c2"].sockops_limit == 0
    assert by["d1"].sockops and not by["d1"].sockops_server and by["d1"].sockops_limit == 64
    assert by["a"].probe_copies == 0 and not by["a"].sockops
    # the summary's home and the floor: sk_storage (c), the LRU hash (e), 1 in 4 of its
    # callbacks (f), callbacks doing nothing (z)
    assert not by["c2"].sockops_lru and by["e2"].sockops_lru and not by["e2"].sockops_sampled
    assert by["f2"].sockops_lru and by["f2"].sockops_sampled and by["f2"].sockops_server
    assert by["z2"].sockops_empty and by["z2"].sockops_server and not by["c2"].sockops_empty


def test_parse_child_takes_the_last_line() -> None:
    assert parse_child("warming up\n200000 12.5 3.25\n") == ChildResult(200000, 12.5, 3.25)


@pytest.mark.parametrize("text", ["", "oops", "10 1.0", "10 x 1.0", "0 1.0 1.0",
                                  "10 1.0 0", "10 -1 1.0", "10 1.0 1.0 extra"])
def test_parse_child_rejects_malformed_output(text: str) -> None:
    with pytest.raises(ValueError, match="bench child printed"):
        parse_child(text)


def test_figures_are_per_exchange() -> None:
    f = figures("b2", ChildResult(100_000, 5.0, 2.0), runs=400_000, run_ns=28_000_000)
    assert f.cpu_us == pytest.approx(50.0)
    assert f.exchanges_per_s == pytest.approx(50_000.0)
    assert f.prog_runs == pytest.approx(4.0)
    assert f.prog_ns == pytest.approx(280.0)


def test_summarise_medians_against_the_baseline() -> None:
    runs = [figures("a", ChildResult(1000, c, 1.0), 0, 0) for c in (0.050, 0.052, 0.090)]
    runs += [figures("c2", ChildResult(1000, c, 1.0), 2000, ns)
             for c, ns in ((0.051, 200_000), (0.0535, 220_000), (0.2, 210_000))]
    a, c2 = summarise(runs)
    assert (a.variant, a.rounds, a.cpu_us, a.cpu_us_delta) == ("a", 3, pytest.approx(52.0), 0.0)
    assert c2.cpu_us == pytest.approx(53.5) and c2.cpu_us_delta == pytest.approx(1.5)
    assert c2.prog_runs == pytest.approx(2.0) and c2.ns_per_run == pytest.approx(105.0)
    # without the baseline no difference is claimed
    assert summarise(runs[3:])[0].cpu_us_delta == 0.0


def test_table_has_a_row_per_variant() -> None:
    text = table(summarise([figures("a", ChildResult(10, 0.001, 1.0), 0, 0)]), {"a": "none"})
    lines = text.splitlines()
    assert len(lines) == 3 and lines[2].startswith("| a none | 1 | 100.00 | +0.00 |")


def test_rotated_starts_each_round_elsewhere() -> None:
    vs = pick("a,b1,c1")
    assert [v.name for v in rotated(vs, 0)] == ["a", "b1", "c1"]
    assert [v.name for v in rotated(vs, 4)] == ["b1", "c1", "a"]
