"""bench/tracecost's pure parts (bench/tracecost_stats.py): fdinfo parsing, the per-program
arithmetic and the JSON rounds."""

from __future__ import annotations

from bench.tracecost import WORKLOADS
from bench.tracecost_stats import ProgInfo, ProgStats, costs, parse_fdinfo, round_json

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
    infos = {1: ProgInfo("tcp_probe", 46), 2: ProgInfo("tcp_probe", 46),
             3: ProgInfo("skb__kfree_skb", 120)}
    got = costs(infos, before, after, 100)
    assert [(c.name, c.insns, c.copies, c.events) for c in got] == [
        ("skb__kfree_skb", 120, 1, 0), ("tcp_probe", 46, 2, 500)]
    probe = got[1]
    assert probe.ns_per_event == 100.0
    assert probe.events_per_request == 5.0
    assert probe.ns_per_request == 500.0
    assert got[0].ns_per_event == 0.0  # no events: no division by zero


def test_a_program_without_info_is_named_by_its_id() -> None:
    got = costs({}, {7: ProgStats(7, 5, 0, 0)}, {7: ProgStats(7, 5, 90, 3)}, 3)
    assert [(c.name, c.insns, c.events, c.ns_per_event) for c in got] == [("prog 7", 0, 3, 30.0)]


def test_round_json_per_100k_and_total() -> None:
    progs = costs({1: ProgInfo("tcp_probe", 46), 2: ProgInfo("inet_sock_set_s", 80)},
                  {1: ProgStats(1, 17, 0, 0), 2: ProgStats(2, 5, 0, 0)},
                  {1: ProgStats(1, 17, 40_000, 400), 2: ProgStats(2, 5, 1_000, 2)}, 200)
    got = round_json("waypoint", True, 200, 1234.56, 0.01, 50, progs)
    assert got["workload"] == "waypoint" and got["tracing"] == "on"
    assert got["agent_cpu_ms_per_100k"] == 5000.0  # 10 ms over 200 requests
    assert got["agent_wakeups_per_100k"] == 25000.0
    assert got["tracer_ns_per_request"] == 205.0  # (40,000 + 1,000) ns / 200 requests
    assert [p["name"] for p in got["programs"]] == ["inet_sock_set_s", "tcp_probe"]
    assert got["programs"][1]["events_per_request"] == 2.0
    off = round_json("keepalive", False, 0, 0.0, 0.0, 0, [])
    assert off["tracing"] == "off" and off["tracer_ns_per_request"] == 0  # no division by zero


def test_workloads_cover_the_two_benches() -> None:
    """The waypoint workload (the folded bench/l7/tracecost.py) goes to another URL than the
    ClusterIP ones; close is the only one that opens a connection per request."""
    assert set(WORKLOADS) == {"keepalive", "close", "waypoint"}
    assert WORKLOADS["waypoint"][0] != WORKLOADS["keepalive"][0] == WORKLOADS["close"][0]
    assert [w for w, (_url, close) in WORKLOADS.items() if close] == ["close"]
