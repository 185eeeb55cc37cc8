"""Hubble's policy attribution fields and --print-policy-names, against golden records."""

from __future__ import annotations

import io
import json
from dataclasses import replace

from agent.flows.codec import flow_to_json
from agent.flows.flow import Verdict
from agent.flows.fromjson import flow_from_json
from agent.flows.names import TrafficDirection
from agent.flows.policyjson import network_policy
from agent.flows.printer import FlowPrinter, format_compact, format_dict, table_row
from tests.unit.flows.samples import policy_drop, syn

WEB_IN = network_policy("shop/allow-web")
GOLDEN_POLICY = {
    "name": "allow-web",
    "namespace": "shop",
    "labels": [
        "k8s:io.cilium.k8s.policy.derived-from=NetworkPolicy",
        "k8s:io.cilium.k8s.policy.name=allow-web",
        "k8s:io.cilium.k8s.policy.namespace=shop",
    ],
    "kind": "NetworkPolicy",
}


def allowed() -> object:
    return syn(
        traffic_direction=TrafficDirection.INGRESS,
        ingress_allowed_by=(WEB_IN, network_policy("shop/allow-all")),
    )


def test_json_uses_hubbles_fields_and_reads_back() -> None:
    out = flow_to_json(allowed())
    assert out["ingress_allowed_by"][0] == GOLDEN_POLICY
    assert [p["name"] for p in out["ingress_allowed_by"]] == ["allow-web", "allow-all"]
    assert "egress_allowed_by" not in out and "ingress_denied_by" not in out
    assert list(out).index("ingress_allowed_by") < list(out).index("Summary")
    back = flow_from_json(json.loads(json.dumps(out)))
    assert back.ingress_allowed_by == allowed().ingress_allowed_by


def test_hubbles_own_json_is_read_and_malformed_entries_skipped() -> None:
    data = {"verdict": "DROPPED", "egress_denied_by": [
        {"name": "deny-db", "namespace": "shop", "kind": "CiliumNetworkPolicy",
         "revision": "7", "labels": ["k8s:a=b"]},
        "not a policy",
    ], "ingress_allowed_by": "nope"}
    flow = flow_from_json(data)
    (policy,) = flow.egress_denied_by
    assert (policy.name, policy.kind, policy.revision, policy.labels) == (
        "deny-db", "CiliumNetworkPolicy", 7, ("k8s:a=b",))
    assert flow.ingress_allowed_by == ()
    assert flow_to_json(flow)["egress_denied_by"][0]["revision"] == "7"


def test_compact_names_policies_only_when_asked() -> None:
    flow = allowed()
    plain = format_compact(flow)
    named = format_compact(flow, policy_names=True)
    assert plain.endswith("to-endpoint FORWARDED (TCP Flags: SYN)")
    assert named.endswith(
        "to-endpoint FORWARDED BY allow-web (NetworkPolicy), allow-all (NetworkPolicy) "
        "(TCP Flags: SYN)"
    )


def test_direction_and_verdict_choose_the_list() -> None:
    egress_only = syn(traffic_direction=TrafficDirection.INGRESS, egress_allowed_by=(WEB_IN,))
    assert " BY " not in format_compact(egress_only, policy_names=True)
    denied = replace(policy_drop(), ingress_denied_by=(WEB_IN,), verdict=Verdict.DROPPED,
                     traffic_direction=TrafficDirection.INGRESS)
    assert "DROPPED BY allow-web (NetworkPolicy)" in format_compact(denied, policy_names=True)
    assert "FORWARDED BY allow-web" in format_dict(allowed(), policy_names=True)
    assert "FORWARDED BY allow-web" in table_row(allowed(), policy_names=True)[4]


def test_printer_option_reaches_every_text_output() -> None:
    for output in ("compact", "dict", "table"):
        out = io.StringIO()
        printer = FlowPrinter(output, out=out, policy_names=True)
        printer.flow(allowed())
        printer.close()
        assert "FORWARDED BY allow-web (NetworkPolicy)" in out.getvalue(), output


def test_an_l7_flow_names_both_sides_it_was_judged_on() -> None:
    """The waypoint's L7 flows carry no direction: both the client's egress and the
    backend's ingress were judged, so --print-policy-names names both, once each."""
    from agent.flows.l7flow import L7FlowBuilder
    from tests.unit.flows.test_l7intake import DENIED, OK

    names = (("shop/client-out", "shop/allow-all"), ("shop/allow-web", "shop/allow-all"))
    flow = L7FlowBuilder("node1").flow((*OK[:14], names))
    line = format_compact(flow, policy_names=True)
    assert line.endswith(
        " http-response FORWARDED BY client-out (NetworkPolicy), allow-all (NetworkPolicy), "
        "allow-web (NetworkPolicy) (HTTP/1.1 200 2ms (GET http://echo.shop/x); duration 2ms; "
        "route shop/orders rule 0; backend shop/echo:8080)"
    ), line
    assert " BY " not in format_compact(flow)
    assert flow_to_json(flow)["egress_allowed_by"][0]["name"] == "client-out"
    denied = L7FlowBuilder("node1").flow(DENIED)
    assert format_compact(denied, policy_names=True).endswith(
        " http-response DROPPED (TLS handshake refused: no certificate; duration 2ms)")
