"""What an independent run of the upstream conformance cases found wrong (issue 16, item 7),
through real lab pods and the waypoint:

- a backend that resets the connection before answering is retried (HTTPRoute retry
  ``attempts: 3`` with no ``codes``, GEP-1731's HTTPRouteRetryConnectionError): two resets
  then success gives 200; more failures than attempts give 503;
- every Service shape serves as an HTTPRoute backend: ClusterIP with a selector or with
  EndpointSlices managed by hand (an IPv6 slice beside, ignored), headless with a selector
  or with slices by hand (several slices, one of them not ready, and an IPv6 slice beside,
  ignored); an ExternalName Service
  is refused with ResolvedRefs False, UnsupportedValue (implementation-specific in the spec)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from .conftest import Lab
from .test_datapath import apply, deployment, namespace, pods_of, service, wait_for

pytestmark = pytest.mark.netns
NS = "shapes"
PORT = {"name": "p", "port": 8080, "protocol": "TCP"}  # the echo pods' port (``service``'s "p")


def slice_(svc: str, name: str, addresses: list[tuple[str, bool]], family: str = "IPv4") -> dict[str, Any]:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": name, "namespace": NS, "labels": {"kubernetes.io/service-name": svc}},
            "addressType": family, "ports": [PORT],
            "endpoints": [{"addresses": [ip], "conditions": {"ready": ready}} for ip, ready in addresses]}


def headless(name: str, selector: bool) -> dict[str, Any]:
    svc = service(NS, name)
    svc["spec"]["clusterIP"] = "None"
    if selector:
        svc["spec"]["selector"] = {"app": "be"}
    else:
        del svc["spec"]["selector"]
    return svc


def by_hand(name: str) -> dict[str, Any]:
    svc = service(NS, name)
    del svc["spec"]["selector"]
    return svc


BACKENDS = ["sel", "manual", "hl-sel", "hl-manual"]


def rule(path: str, backend: str, **extra: Any) -> dict[str, Any]:
    return {"matches": [{"path": {"type": "PathPrefix", "value": path}}],
            "backendRefs": [{"name": backend, "port": 80}], **extra}


@pytest.fixture(scope="module")
def shapes(lab: Lab) -> Iterator[dict[str, Any]]:
    sel = service(NS, "sel")
    sel["spec"]["selector"] = {"app": "be"}
    front = service(NS, "front")
    front["spec"]["selector"] = {"app": "be"}
    apply(lab, namespace(NS), deployment(NS, "be", 1, node="node2"),
          deployment(NS, "client", 1, node="node1"), front, sel, by_hand("manual"),
          headless("hl-sel", True), headless("hl-manual", False),
          {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "ext", "namespace": NS},
           "spec": {"type": "ExternalName", "externalName": "api.example.com",
                    "ports": [{"name": "p", "port": 80}]}})
    lab.wait_pods_ready(NS, 2, timeout=90)
    be_ip = pods_of(lab, NS, "be")[0]["status"]["podIP"]
    rules = [rule(f"/{b}/", b) for b in BACKENDS]
    rules.append(rule("/retry", "sel", retry={"attempts": 3, "backoff": "10ms"}))
    rules.append(rule("/ext/", "ext"))
    route = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
             "metadata": {"name": "shapes", "namespace": NS},
             "spec": {"parentRefs": [{"group": "", "kind": "Service", "name": "front", "port": 80}],
                      "rules": rules}}
    apply(lab,
          slice_("manual", "manual-1", [(be_ip, True)]),
          slice_("manual", "manual-6", [("fd00::251", True)], family="IPv6"),  # ignored
          # several slices for one Service: the pod; an endpoint not ready (never dialled:
          # nothing answers at that address); an IPv6 slice (ignored)
          slice_("hl-manual", "hl-manual-1", [(be_ip, True)]),
          slice_("hl-manual", "hl-manual-2", [("10.250.250.250", False)]),
          slice_("hl-manual", "hl-manual-6", [("fd00::250", True)], family="IPv6"),
          route)
    client = pods_of(lab, NS, "client")[0]["metadata"]["name"]

    def served() -> Any:
        r = lab.exec(NS, client, "curl", "-s", "--max-time", "2", "-o", "/dev/null", "-w",
                     "%{http_code}", "http://front.shapes/hl-manual/ready", check=False)
        return r.stdout == "200"

    wait_for(served, timeout=30, what="the route is served")
    yield {"client": client, "be": pods_of(lab, NS, "be")[0]["metadata"]["name"]}


def curl(lab: Lab, shapes: dict[str, Any], url: str) -> tuple[str, str]:
    out = lab.exec(NS, shapes["client"], "curl", "-s", "--max-time", "10", "-w", "\n%{http_code}",
                   url, check=False)
    body, _, code = out.stdout.rpartition("\n")
    return code, body


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_service_shape_is_a_backend(lab: Lab, shapes: dict[str, Any], backend: str) -> None:
    for i in range(6):  # every try lands on the pod: not on the not-ready or IPv6 endpoint
        code, body = curl(lab, shapes, f"http://front.shapes/{backend}/{i}")
        assert code == "200", (backend, code, body)
        assert json.loads(body)["pod"] == shapes["be"]


def test_a_backend_reset_before_answering_is_retried(lab: Lab, shapes: dict[str, Any]) -> None:
    token = uuid.uuid4().hex
    code, body = curl(lab, shapes, f"http://front.shapes/retry?uuid={token}&succeedAfter=2&failWith=reset")
    assert code == "200", body
    token = uuid.uuid4().hex
    code, _ = curl(lab, shapes, f"http://front.shapes/retry?uuid={token}&succeedAfter=4&failWith=reset")
    assert code == "503"  # the try and three retries all reset


@pytest.mark.parametrize("fault", ["close", "garbage"])
def test_a_backend_closing_or_babbling_before_answering_is_retried(
    lab: Lab, shapes: dict[str, Any], fault: str
) -> None:
    token = uuid.uuid4().hex
    code, body = curl(lab, shapes, f"http://front.shapes/retry?uuid={token}&succeedAfter=2&failWith={fault}")
    assert code == "200", body


def test_an_external_name_service_is_refused_with_a_reason(lab: Lab, shapes: dict[str, Any]) -> None:
    def resolved_refs() -> Any:
        routes = [r for r in lab.get("httproutes", NS) if r["metadata"]["name"] == "shapes"]
        parents = (routes[0].get("status") or {}).get("parents") or [] if routes else []
        conds = {c["type"]: c for p in parents for c in p.get("conditions", [])}
        return conds.get("ResolvedRefs")

    cond = wait_for(resolved_refs, timeout=20, what="the route's ResolvedRefs condition")
    assert (cond["status"], cond["reason"]) == ("False", "UnsupportedValue")
    assert "ExternalName" in cond["message"]
    code, body = curl(lab, shapes, "http://front.shapes/ext/x")
    assert code == "500", body  # the spec's answer for a backendRef that cannot be used

