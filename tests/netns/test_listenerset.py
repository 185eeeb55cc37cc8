"""ListenerSet in a live lab (GEP-1713): a ListenerSet from another namespace adds an HTTP
listener on a new port with a hostname to a Gateway that admits that namespace, and an
HTTPRoute attached to the ListenerSet is served there to a pod and to the external client.
A ListenerSet from a namespace the Gateway does not admit is refused (NotAllowed) and its
port is not served; a listener conflicting with the Gateway's own is Conflicted and its
route is not served on it."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest

from .conftest import Lab
from .test_datapath import apply, deployment, namespace, pods_of, service, wait_for

pytestmark = pytest.mark.netns
GW = "gateway.networking.k8s.io/v1"
INFRA, TEAM, EVIL = "lset-infra", "lset-team", "lset-evil"


def listener_set(ns: str, name: str, listeners: list[dict[str, Any]]) -> dict[str, Any]:
    return {"apiVersion": GW, "kind": "ListenerSet", "metadata": {"name": name, "namespace": ns},
            "spec": {"parentRef": {"name": "edge", "namespace": INFRA}, "listeners": listeners}}


def http_listener(name: str, port: int, hostname: str) -> dict[str, Any]:
    return {"name": name, "port": port, "protocol": "HTTP", "hostname": hostname}


def ls_route(ns: str, name: str, ls: str, hostname: str, backend: str,
             section: str | None = None) -> dict[str, Any]:
    ref = {"group": "gateway.networking.k8s.io", "kind": "ListenerSet", "name": ls}
    if section is not None:
        ref["sectionName"] = section
    return {"apiVersion": GW, "kind": "HTTPRoute", "metadata": {"name": name, "namespace": ns},
            "spec": {"parentRefs": [ref],
                     "hostnames": [hostname],
                     "rules": [{"backendRefs": [{"name": backend, "port": 80}]}]}}


def conditions(obj: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """An object's status conditions, or a listener status entry's own."""
    found = obj["conditions"] if "conditions" in obj else (obj.get("status") or {}).get(
        "conditions") or []
    return {c["type"]: (c["status"], c["reason"]) for c in found}


def one(lab: Lab, kind: str, ns: str, name: str) -> dict[str, Any]:
    found = [o for o in lab.get(kind, ns) if o["metadata"]["name"] == name]
    assert found, f"{kind} {ns}/{name} not found"
    return found[0]


@pytest.fixture(scope="module")
def site(lab: Lab) -> dict[str, Any]:
    gateway = {"apiVersion": GW, "kind": "Gateway", "metadata": {"name": "edge", "namespace": INFRA},
               "spec": {"gatewayClassName": "tulle",
                        "allowedListeners": {"namespaces": {"from": "Selector", "selector": {
                            "matchLabels": {"lset-test": "allowed"}}}},
                        "listeners": [{"name": "http", "port": 80, "protocol": "HTTP",
                                       "hostname": "infra.example"}]}}
    apply(
        lab,
        namespace(INFRA), namespace(TEAM, {"lset-test": "allowed"}), namespace(EVIL),
        deployment(TEAM, "team", 1, node="node2"), service(TEAM, "team"),
        deployment(EVIL, "evil", 1, node="node2"), service(EVIL, "evil"),
        deployment(INFRA, "client", 1, node="node1"),
        gateway,
        listener_set(TEAM, "team-ls", [
            http_listener("team", 8081, "team.example"),
            # the Gateway's own port, protocol and hostname: Conflicted, not served
            http_listener("steal", 80, "infra.example"),
        ]),
        ls_route(TEAM, "team", "team-ls", "team.example", "team"),
        ls_route(TEAM, "steal", "team-ls", "infra.example", "team", section="steal"),
        listener_set(EVIL, "evil-ls", [http_listener("evil", 8082, "evil.example")]),
        ls_route(EVIL, "evil", "evil-ls", "evil.example", "evil"),
    )
    for ns, count in ((TEAM, 1), (EVIL, 1), (INFRA, 1)):
        lab.wait_pods_ready(ns, count, timeout=90)
    client = pods_of(lab, INFRA, "client")[0]["metadata"]["name"]
    addresses = wait_for(lambda: (one(lab, "gateways", INFRA, "edge").get("status") or {})
                         .get("addresses"), timeout=30, what="the Gateway's address")
    info = {"client": client, "gateway": addresses[0]["value"]}
    wait_for(lambda: get(lab, info, "team.example", 8081)[0] == "200", timeout=30,
             what="the ListenerSet's listener served to a pod")
    return info


def get(lab: Lab, site: dict[str, Any], host: str, port: int) -> tuple[str, dict[str, Any] | None]:
    out = lab.exec(INFRA, site["client"], "curl", "-s", "--max-time", "3", "-H", f"Host: {host}",
                   "-w", "\n%{http_code}", f"http://{site['gateway']}:{port}/x", check=False)
    return _parse(out)


def external(lab: Lab, site: dict[str, Any], host: str, port: int) -> tuple[str, Any]:
    out = lab.tulle("lab", "exec", "--external", "--", "curl", "-s", "--max-time", "3",
                    "-H", f"Host: {host}", "-w", "\n%{http_code}",
                    f"http://{site['gateway']}:{port}/x", check=False, timeout=30)
    return _parse(out)


def _parse(out: subprocess.CompletedProcess[str]) -> tuple[str, dict[str, Any] | None]:
    body, _, code = out.stdout.rpartition("\n")
    try:
        return code, json.loads(body)
    except ValueError:
        return code, None


def pod_of(echoed: dict[str, Any] | None) -> str:
    assert echoed is not None
    return str(echoed["pod"]).rsplit("-", 2)[0]


def test_a_listener_set_listener_is_served_to_a_pod(lab: Lab, site: dict[str, Any]) -> None:
    code, echoed = get(lab, site, "team.example", 8081)
    assert code == "200" and pod_of(echoed) == "team"
    code, _ = get(lab, site, "other.example", 8081)  # the listener's hostname bounds it
    assert code == "404"


def test_a_listener_set_listener_is_served_to_the_external_client(
    lab: Lab, site: dict[str, Any]
) -> None:
    wait_for(lambda: external(lab, site, "team.example", 8081)[0] == "200", timeout=30,
             what="the ListenerSet's listener served to the external client")
    code, echoed = external(lab, site, "team.example", 8081)
    assert code == "200" and pod_of(echoed) == "team"


def test_status_says_accepted_with_the_conflicted_listener(lab: Lab, site: dict[str, Any]) -> None:
    ls = one(lab, "listenersets", TEAM, "team-ls")
    assert conditions(ls)["Accepted"] == ("True", "ListenersNotValid")
    assert conditions(ls)["Programmed"] == ("True", "Programmed")
    entries = {e["name"]: e for e in ls["status"]["listeners"]}
    assert conditions(entries["team"])["Accepted"] == ("True", "Accepted")
    assert entries["team"]["attachedRoutes"] == 1
    assert conditions(entries["steal"])["Conflicted"] == ("True", "HostnameConflict")
    gateway = one(lab, "gateways", INFRA, "edge")
    assert gateway["status"]["attachedListenerSets"] == 1
    assert [e["name"] for e in gateway["status"]["listeners"]] == ["http"]
    route = one(lab, "httproutes", TEAM, "team")
    assert conditions(route["status"]["parents"][0])["Accepted"] == ("True", "Accepted")


def test_a_conflicted_listener_does_not_take_the_gateways_traffic(
    lab: Lab, site: dict[str, Any]
) -> None:
    code, echoed = get(lab, site, "infra.example", 80)
    assert code == "404" and echoed is None  # the Gateway's own listener, with no route


def test_a_listener_set_from_a_namespace_not_admitted_is_refused_and_not_served(
    lab: Lab, site: dict[str, Any]
) -> None:
    ls = one(lab, "listenersets", EVIL, "evil-ls")
    assert conditions(ls)["Accepted"] == ("False", "NotAllowed")
    assert conditions(ls)["Programmed"] == ("False", "NotAllowed")
    code, echoed = get(lab, site, "evil.example", 8082)
    assert code != "200" and echoed is None, (code, echoed)
    code, echoed = external(lab, site, "evil.example", 8082)
    assert code != "200" and echoed is None, (code, echoed)
    route = one(lab, "httproutes", EVIL, "evil")
    assert not (route.get("status") or {}).get("parents")
