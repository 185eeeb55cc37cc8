"""bench/tracecost's pure parts: fdinfo parsing and the per-program arithmetic."""

from __future__ import annotations

from bench.tracecost import ProgStats, costs, parse_fdinfo

PROG_FDINFO = """pos:\t0
flags:\t02000002
mnt_id:\t16
ino:\t2081
prog_type:\t17
prog_jited:\t1
prog_tag:\t0b1a2c3d4e5f6a7b
memlock:\t4096
prog_id:\t812
run_time_ns:\t123456
run_cnt:\t1000
recursion_misses:\t0
verified_insns:\t40
"""


def test_fdinfo_of_a_program() -> None:
    assert parse_fdinfo(PROG_FDINFO) == ProgStats(812, 17, 123456, 1000)


def test_fdinfo_of_a_map_or_socket_is_none() -> None:
    assert parse_fdinfo("pos:\t0\nflags:\t02\nmap_type:\t27\nmap_id:\t5\n") is None
    assert parse_fdinfo("") is None
    assert parse_fdinfo("prog_id:\tx\nprog_type:\t5\nrun_time_ns:\t1\nrun_cnt:\t1\n") is None


def test_costs_sum_the_agents_copies_per_name() -> None:
    before = {1: ProgStats(1, 17, 1_000, 10), 2: ProgStats(2, 17, 0, 0),
              3: ProgStats(3, 5, 50, 1)}
    after = {1: ProgStats(1, 17, 31_000, 310), 2: ProgStats(2, 17, 20_000, 200),
             3: ProgStats(3, 5, 50, 1), 4: ProgStats(4, 5, 999, 9)}  # 4: loaded meanwhile
    got = costs({1: "tcp_probe", 2: "tcp_probe", 3: "skb__kfree_skb"}, before, after, 100)
    assert [(c.name, c.copies, c.events) for c in got] == [
        ("skb__kfree_skb", 1, 0), ("tcp_probe", 2, 500)]
    probe = got[1]
    assert probe.ns_per_event == 100.0
    assert probe.events_per_request == 5.0
    assert probe.ns_per_request == 500.0
    assert got[0].ns_per_event == 0.0  # no events: no division by zero
