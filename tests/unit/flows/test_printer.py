"""Printers against golden flows: compact, dict, table and json lines."""

from __future__ import annotations

import io
import json

import pytest

from agent.flows.flow import Flow, LostEvent, LostEventSource
from agent.flows.printer import (
    FlowPrinter,
    format_compact,
    format_dict,
    format_table,
    table_row,
)
from tests.unit.flows.samples import (
    T0,
    dns_udp,
    http_request,
    http_response,
    policy_drop,
    syn,
    synack,
)

COMPACT = {
    "syn": "Nov 22 10:00:00.123: shop/web-1:43512 (ID:12345) -> shop/echo-2:8080 (ID:23456) "
    "to-endpoint FORWARDED (TCP Flags: SYN)",
    "synack": "Nov 22 10:00:00.124: shop/web-1:43512 (ID:12345) <- shop/echo-2:8080 (ID:23456) "
    "to-endpoint FORWARDED (TCP Flags: SYN, ACK)",
    "drop": "Nov 22 10:00:00.125: shop/web-1:43600 (ID:12345) -> data/db-0:5432 (ID:34567) "
    "Policy denied DROPPED (TCP Flags: SYN; rule data/deny-all; dropped at bpf_lxc.c:412)",
    "request": "Nov 22 10:00:00.126: shop/web-1:43512 (ID:12345) -> shop/echo-2:8080 (ID:23456) "
    "http-request FORWARDED (HTTP/1.1 GET http://echo/hello; route shop/echo-route rule 0)",
    "response": "Nov 22 10:00:00.129: shop/web-1:43512 (ID:12345) <- shop/echo-2:8080 (ID:23456) "
    "http-response FORWARDED (HTTP/1.1 200 3ms (GET http://echo/hello); "
    "route shop/echo-route rule 0; backend 10.1.1.7:8080)",
    "udp": "Nov 22 10:00:00.130: shop/web-1:53000 (ID:12345) <> 1.1.1.1:53 (world) "
    "to-network FORWARDED (UDP; 64 B sent, 1.5 kB received in 2ms)",
}
SAMPLES = {"syn": syn, "synack": synack, "drop": policy_drop, "request": http_request,
           "response": http_response, "udp": dns_udp}


@pytest.mark.parametrize("name", COMPACT)
def test_compact_golden(name: str) -> None:
    assert format_compact(SAMPLES[name]()) == COMPACT[name]


def test_compact_day_padding_node_name_and_reserved_identity() -> None:
    f = syn(T0 - 21 * 86400 * 10**9, node_name="node-7")  # Nov 1
    line = format_compact(f, node_name=True)
    assert line.startswith("Nov  1 10:00:00.123 [node-7]: ")
    assert format_compact(Flow()) == "N/A:  (unknown) <>  (unknown) UNKNOWN VERDICT_UNKNOWN ()"


def test_colour_only_when_asked() -> None:
    plain = format_compact(policy_drop())
    assert "\x1b[" not in plain
    coloured = format_compact(policy_drop(), color=True)
    assert "\x1b[31mDROPPED\x1b[0m" in coloured
    assert "\x1b[36mshop/web-1:43600\x1b[0m" in coloured
    assert "\x1b[35m(ID:12345)\x1b[0m" in coloured


def test_dict_golden() -> None:
    assert format_dict(syn()) == (
        "  TIMESTAMP: Nov 22 10:00:00.123\n"
        "     SOURCE: shop/web-1:43512\n"
        "DESTINATION: shop/echo-2:8080\n"
        "       TYPE: to-endpoint\n"
        "    VERDICT: FORWARDED\n"
        "    SUMMARY: TCP Flags: SYN"
    )


def test_table_golden() -> None:
    text = format_table([table_row(syn()), table_row(dns_udp())])
    assert text.splitlines() == [
        "TIMESTAMP             SOURCE             DESTINATION        TYPE          VERDICT     "
        "SUMMARY",
        "Nov 22 10:00:00.123   shop/web-1:43512   shop/echo-2:8080   to-endpoint   FORWARDED   "
        "TCP Flags: SYN",
        "Nov 22 10:00:00.130   shop/web-1:53000   1.1.1.1:53         to-network    FORWARDED   "
        "UDP; 64 B sent, 1.5 kB received in 2ms",
    ]


def test_printer_routes_outputs() -> None:
    out, err = io.StringIO(), io.StringIO()
    p = FlowPrinter("json", out, err)
    p.flow(syn())
    p.lost(LostEvent(LostEventSource.HUBBLE_RING_BUFFER, 3, time=T0))
    p.close()
    lines = out.getvalue().splitlines()
    assert json.loads(lines[0])["flow"]["l4"]["TCP"]["destination_port"] == 8080
    assert json.loads(lines[1])["lost_events"]["num_events_lost"] == "3"
    assert " " not in lines[0].split('"Summary"')[0].replace("Nov", "")  # compact JSON

    out, err = io.StringIO(), io.StringIO()
    p = FlowPrinter("dict", out, err)
    p.flow(syn())
    p.flow(synack())
    p.lost(LostEvent(LostEventSource.PERF_EVENT_RING_BUFFER, 7, cpu=1))
    p.node_status("NODE_UNAVAILABLE", ["node-3"], "connection refused", T0)
    p.node_status("NODE_CONNECTED", ["node-1"], "", T0)  # quiet
    p.close()
    assert out.getvalue().count("------------\n") == 1
    assert err.getvalue().splitlines() == [
        "EVENTS LOST: PERF_EVENT_RING_BUFFER CPU(1) 7",
        "Nov 22 10:00:00.123: 1 nodes are unavailable: node-3 (connection refused)",
    ]

    out = io.StringIO()
    p = FlowPrinter("table", out, io.StringIO(), color=True)
    p.flow(syn())
    assert out.getvalue() == ""  # buffered until flush
    p.flush()
    p.flow(synack())
    p.close()
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("TIMESTAMP") and len(lines) == 3
    assert "\x1b[" not in out.getvalue()
    with pytest.raises(ValueError, match="unknown output"):
        FlowPrinter("yaml")
