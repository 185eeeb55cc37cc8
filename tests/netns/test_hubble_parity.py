"""Hubble parity on live flows: policy names on datapath verdicts (--print-policy-names,
``ingress_allowed_by``) and ``IP.source_xlated`` on the reply of a connection through a VIP."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from .conftest import Lab
from .test_datapath import apply, deployment, namespace, pods_of, service, wait_for

pytestmark = pytest.mark.netns
NS = "hp"


@pytest.fixture(scope="module")
def hp(lab: Lab) -> dict[str, Any]:
    allow = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
             "metadata": {"name": "allow-caller", "namespace": NS},
             "spec": {"podSelector": {"matchLabels": {"app": "api"}},
                      "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "caller"}}}],
                                   "ports": [{"port": 8080}]}]}}
    apply(lab, namespace(NS), deployment(NS, "api", 1, node="node2"), service(NS, "api"),
          deployment(NS, "caller", 1, node="node1"), allow)
    lab.wait_pods_ready(NS, 2, timeout=90)
    caller = pods_of(lab, NS, "caller")[0]["metadata"]["name"]
    api = pods_of(lab, NS, "api")[0]
    svc = next(s for s in lab.get("services", NS) if s["metadata"]["name"] == "api")
    wait_for(lambda: lab.exec(NS, caller, "curl", "-s", "--max-time", "2", f"http://api.{NS}/",
                              check=False).returncode == 0, what="service reachable")
    return {"caller": caller, "api": api["metadata"]["name"], "api_ip": api["status"]["podIP"],
            "vip": svc["spec"]["clusterIP"]}


def flows(lab: Lab, *args: str) -> list[dict[str, Any]]:
    out = lab.tulle("observe", "-o", "json", "--last", "500", *args).stdout
    return [json.loads(line)["flow"] for line in out.splitlines() if line.strip()]


def test_allowed_connection_names_its_network_policy(lab: Lab, hp: dict[str, Any]) -> None:
    lab.exec(NS, hp["caller"], "curl", "-s", "--max-time", "3", f"http://api.{NS}/named")
    time.sleep(0.5)
    into_api = [f for f in flows(lab, "--to-pod", f"{NS}/{hp['api']}", "--traffic-direction",
                                 "ingress") if f.get("ingress_allowed_by")]
    assert into_api, "no ingress flow of api names a policy"
    (policy,) = into_api[-1]["ingress_allowed_by"]
    assert (policy["name"], policy["namespace"], policy["kind"]) == (
        "allow-caller", NS, "NetworkPolicy")
    # The caller's egress is not selected by any policy: nothing to name there.
    assert not any(f.get("egress_allowed_by") for f in flows(lab, "--from-pod", f"{NS}/{hp['caller']}"))
    text = lab.tulle("observe", "--last", "500", "--to-pod", f"{NS}/{hp['api']}",
                     "--print-policy-names").stdout
    assert "BY allow-caller (NetworkPolicy)" in text, text[-2000:]


def test_reply_through_the_vip_carries_source_xlated(lab: Lab, hp: dict[str, Any]) -> None:
    lab.exec(NS, hp["caller"], "curl", "-s", "--max-time", "3", f"http://api.{NS}/xlated")
    time.sleep(0.5)
    replies = [f for f in flows(lab, "--to-pod", f"{NS}/{hp['caller']}") if f.get("is_reply")]
    assert replies, "no reply flow toward the caller"
    r = replies[-1]
    assert r["IP"]["source"] == hp["api_ip"] and r["IP"]["source_xlated"] == hp["vip"]
    assert r["IP"]["destination"] != hp["api_ip"]
    assert r["source"]["pod_name"] == hp["api"] and r["destination"]["pod_name"] == hp["caller"]
    assert r["source_service"] == {"name": "api", "namespace": NS}
    # Hubble's compact line shows the reply flipped back: caller <- api.
    text = lab.tulle("observe", "--last", "500", "--to-pod", f"{NS}/{hp['caller']}").stdout
    assert f"{NS}/{hp['caller']}" in text and " <- " in text


def test_a_request_through_the_waypoint_names_its_network_policy(
    lab: Lab, hp: dict[str, Any]
) -> None:
    """With an HTTPRoute the caller's requests go through the waypoint, which judges both
    sides itself: its L7 flow names allow-caller (the api's ingress) and nothing for the
    caller's egress, which no policy selects."""
    route = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
             "metadata": {"name": "api", "namespace": NS},
             "spec": {"parentRefs": [{"group": "", "kind": "Service", "name": "api", "port": 80}],
                      "rules": [{"backendRefs": [{"name": "api", "port": 80}]}]}}
    apply(lab, route)
    try:
        def l7() -> list[dict[str, Any]]:
            lab.exec(NS, hp["caller"], "curl", "-s", "--max-time", "2", f"http://api.{NS}/l7",
                     check=False)
            return [f for f in flows(lab, "--from-pod", f"{NS}/{hp['caller']}")
                    if f.get("l7") and "/l7" in json.dumps(f["l7"])]

        wait_for(lambda: bool(l7()), what="an L7 flow of the caller's request")
        flow = l7()[-1]
        assert flow["verdict"] == "FORWARDED", flow
        (policy,) = flow["ingress_allowed_by"]
        assert (policy["name"], policy["namespace"], policy["kind"]) == (
            "allow-caller", NS, "NetworkPolicy")
        assert "egress_allowed_by" not in flow
        text = lab.tulle("observe", "--last", "500", "--from-pod", f"{NS}/{hp['caller']}",
                         "--print-policy-names").stdout
        assert "http-response FORWARDED BY allow-caller (NetworkPolicy)" in text, text[-2000:]
    finally:
        lab.tulle("delete", "httproute", "api", "-n", NS)
