"""`tulle trace request` against golden waypoint records: the line, the JSON object (its
field names are a contract), the per-pair histograms, and the server-side narrowing."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from agent.cli.trace import VERB_FILTERS, narrow
from agent.flows.enrich import EndpointIndex, enrich
from agent.flows.filters import compile_filters
from agent.flows.flow import Flow
from agent.flows.l7flow import L7FlowBuilder
from agent.flows.l7record import L7Record
from agent.observer.convert import FlowsQuery
from agent.tracing import tracefmt

INDEX = EndpointIndex.build(
    pods=[{"ip": "10.244.1.2", "namespace": "shop", "name": "web-1", "labels": {"app": "web"},
           "workload": {"kind": "Deployment", "name": "web"}, "identity": 1001}],
    services=[{"cluster_ip": "10.96.0.20", "port": 8080, "namespace": "shop", "name": "echo"}],
    local_node="node1",
)
MS = 1_000_000
# Head read at 0; a new connection (2 ms), request written at 2.1 ms; response head at
# 14.1 ms (upstream RTT 100 µs); out at 14.2 ms; last byte at 20.2 ms; done at 20.3 ms.
RECORD: L7Record = (
    1_764_918_005_000_000_000, 20_300_000, 200, "GET", "http://echo.shop:8080/cart?id=7",
    "HTTP/1.1", "shop/orders", "shop/orders#0", "shop/echo:8080", "",
    ("10.244.1.2", 40000), ("10.96.0.20", 8080), "",
    (40, 2_100_000, 2 * MS, 0, 14_100_000, 14_200_000, 20_200_000, 100),
    None,
)


def flow_of(record: L7Record) -> Flow:
    return enrich(L7FlowBuilder("node1").flow(record), INDEX, "node1")


FLOW = flow_of(RECORD)


def test_line_golden() -> None:
    assert tracefmt.wanted("request", FLOW)
    assert tracefmt.format_line("request", FLOW) == (
        "Dec  5 07:00:05.000 node1 shop/web-1:40000 -> shop/echo:8080 GET /cart?id=7 200 "
        "total 20.3ms = client 40µs + waypoint 300µs + connect 2ms + upstream 100µs + "
        "backend 17.9ms (shop/orders)"
    )


def test_json_golden() -> None:
    out = tracefmt.event_json("request", FLOW)
    assert out == {
        "time": "2025-12-05T07:00:05Z", "node_name": "node1", "event": "request",
        "source": {"namespace": "shop", "pod_name": "web-1",
                   "workload": {"kind": "Deployment", "name": "web"}},
        "destination": {},
        "source_ip": "10.244.1.2", "destination_ip": "10.96.0.20",
        "source_port": 40000, "destination_port": 8080, "protocol": "TCP",
        "destination_service": "shop/echo",
        "method": "GET", "url": "http://echo.shop:8080/cart?id=7", "http_protocol": "HTTP/1.1",
        "status": 200, "route": "shop/orders", "rule": "shop/orders#0",
        "backend": "shop/echo:8080", "verdict": "FORWARDED", "latency_ns": 20_300_000,
        "total_ns": 20_340_000, "client_network_ns": 40_000, "proxy_ns": 300_000,
        "upstream_connect_ns": 2_000_000, "upstream_network_ns": 100_000,
        "backend_ns": 17_900_000,
    }
    json.dumps(out)


def test_a_dropped_request_names_its_reason() -> None:
    denied = flow_of((*RECORD[:2], 403, *RECORD[3:9], "POLICY_DENIED", *RECORD[10:13],
                      (40, 0, 0, 0, 0, 0, 0, 0), None))  # type: ignore[arg-type]
    line = tracefmt.format_line("request", denied)
    assert "GET /cart?id=7 403 POLICY_DENIED total 20.3ms = client 40µs + waypoint 20.3ms" \
        in line
    assert tracefmt.event_json("request", denied)["drop_reason"] == "POLICY_DENIED"


def test_flows_without_a_split_are_not_requests() -> None:
    old = flow_of((*RECORD[:13], None, None))  # type: ignore[arg-type]
    assert not tracefmt.wanted("request", old)


def test_histograms_per_workload_pair_show_each_part() -> None:
    slow = flow_of((*RECORD[:13], (40, 2_100_000, 0, 0, 500_000_000, 500_000_000,
                                   500_100_000, 100), None))  # type: ignore[arg-type]
    lines = tracefmt.histograms("request", [FLOW, slow])
    assert lines[0] == "shop/web -> shop/echo (2 requests)"
    headers = [line.split(":")[0].strip() for line in lines if "distribution" in line]
    assert headers == ["total µs", "client µs", "waypoint µs", "connect µs", "upstream µs",
                       "backend µs"]


def test_the_server_narrows_to_l7_flows() -> None:
    query = narrow(FlowsQuery(), "request")
    keep = compile_filters(query.whitelist, ())
    assert keep(FLOW)
    assert VERB_FILTERS["request"]["event_type"][0].type == 129


# -- the command, against an in-process observer ----------------------------------------------

def test_trace_request_prints_one_json_object_per_request(tmp_path: Path) -> None:
    from agent.cli.trace import trace
    from agent.flows.store import FlowRing
    from agent.observer.server import ObserverServer

    ring = FlowRing(100)
    other = flow_of((*RECORD[:13], None, None))  # type: ignore[arg-type]
    ring.put_many([FLOW, other, FLOW])
    sock = tmp_path / "observer.sock"
    server = ObserverServer(ring, "node1", unix_socket=sock).start()
    try:
        def run(*args: str) -> str:
            result = CliRunner().invoke(trace, ["request", "--server", f"unix:{sock}", *args],
                                        catch_exceptions=False)
            assert result.exit_code == 0, result.output
            return result.stdout

        lines = run("-o", "json", "--last", "10").splitlines()
        objects = [json.loads(line) for line in lines]
        assert len(objects) == 2  # the flow without a split is not a request event
        for obj in objects:
            assert {"total_ns", "client_network_ns", "proxy_ns", "upstream_connect_ns",
                    "upstream_network_ns", "backend_ns", "source", "destination_service",
                    "route", "status"} <= set(obj)
        text = run("--last", "10", "--from-pod", "shop/web")
        assert text.count("GET /cart?id=7 200 total 20.3ms") == 2
        hist = run("--histogram", "-n", "shop")
        assert hist.startswith("shop/web -> shop/echo (2 requests)")
    finally:
        server.stop(grace=0)


def test_trace_request_says_the_split_is_off_and_how_to_turn_it_on(tmp_path: Path) -> None:
    from agent.cli.trace import trace
    from agent.flows.store import FlowRing
    from agent.observer.server import ObserverServer

    ring = FlowRing(100)
    unsplit = flow_of((*RECORD[:13], None, None))  # type: ignore[arg-type]  # split off
    ring.put_many([unsplit, unsplit])
    sock = tmp_path / "observer.sock"
    server = ObserverServer(ring, "node1", unix_socket=sock).start()
    try:
        result = CliRunner().invoke(trace, ["request", "--server", f"unix:{sock}", "-o", "json"],
                                    catch_exceptions=False)
        assert result.exit_code == 0, result.output
        assert result.stdout == ""  # stdout stays one JSON object per request: none here
        assert result.stderr.count("request split is off") == 1  # said once
        assert "--request-split" in result.stderr and "SIGUSR2" in result.stderr
    finally:
        server.stop(grace=0)
