"""ListenerSets (GEP-1713): which attach, how their listeners merge into the Gateway, which
conflict, what routes attach to, what status says and what is served."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from agent.model.convert import ConversionError, from_dict
from agent.model.gateway import Gateway, GatewayAddress
from agent.model.listenerset import ListenerSet
from gatewayapi import GatewayParent, RoutingInputs, compute_status
from gatewayapi.analysis import analyze
from gatewayapi.compile import compile_analysis
from gatewayapi.listenersets import served_listeners
from tests.unit.gatewayapi.helpers import (
    GW,
    INFRA,
    gateway_class,
    listener,
    namespace,
    picked,
    route,
    service,
)

ALL = {"namespaces": {"from": "All"}}


def gw(allowed: dict[str, Any] | None, listeners: list[dict[str, Any]] | None = None) -> Gateway:
    spec: dict[str, Any] = {
        "gatewayClassName": "tulle",
        "listeners": listeners or [listener(allowed=ALL)],
    }
    if allowed is not None:
        spec["allowedListeners"] = {"namespaces": allowed}
    obj = from_dict({"apiVersion": GW, "kind": "Gateway",
                     "metadata": {"name": "gw", "namespace": INFRA, "generation": 1},
                     "spec": spec})
    assert isinstance(obj, Gateway)
    return obj


def lset(name: str, ns: str, listeners: list[dict[str, Any]], created: str = "2024-01-01T00:00:00Z",
         parent: dict[str, Any] | None = None) -> ListenerSet:
    obj = from_dict({"apiVersion": GW, "kind": "ListenerSet",
                     "metadata": {"name": name, "namespace": ns, "generation": 1,
                                  "creationTimestamp": created},
                     "spec": {"parentRef": parent or {"name": "gw", "namespace": INFRA},
                              "listeners": listeners}})
    assert isinstance(obj, ListenerSet)
    return obj


def ls_ref(name: str, ns: str, **extra: Any) -> dict[str, Any]:
    return {"group": "gateway.networking.k8s.io", "kind": "ListenerSet", "name": name,
            "namespace": ns, **extra}


def world(*objs: Any) -> RoutingInputs:
    def of(kind: str) -> list[Any]:
        return [o for o in objs if o.kind == kind]
    return RoutingInputs.of(
        of("HTTPRoute"), of("Gateway"), [gateway_class()],
        [service("web", "team"), service("web", "default", cluster_ip="10.96.0.11")],
        (), [namespace("team", {"env": "prod"}), namespace("evil"), namespace(INFRA)],
        listener_sets=of("ListenerSet"),
    )


def conditions(status: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}


TEAM_LISTENER = listener("extra", 8080, "HTTP", "team.example", allowed=ALL)


@pytest.mark.parametrize(
    ("allowed", "ns", "accepted"),
    [
        (None, "team", "NotAllowed"),  # the default: no ListenerSets
        ({"from": "None"}, "team", "NotAllowed"),
        ({"from": "Same"}, "team", "NotAllowed"),
        ({"from": "Same"}, INFRA, "Accepted"),
        ({"from": "All"}, "team", "Accepted"),
        ({"from": "Selector", "selector": {"matchLabels": {"env": "prod"}}}, "team", "Accepted"),
        ({"from": "Selector", "selector": {"matchLabels": {"env": "prod"}}}, "evil", "NotAllowed"),
    ],
)
def test_the_gateway_admits_listener_sets_by_namespace(
    allowed: dict[str, Any] | None, ns: str, accepted: str
) -> None:
    inputs = world(gw(allowed), lset("ls", ns, [TEAM_LISTENER]))
    report = compute_status(inputs)
    status = report.listener_sets[f"{ns}/ls"]
    ok = accepted == "Accepted"
    assert conditions(status)["Accepted"] == ("True" if ok else "False", accepted)
    assert conditions(status)["Programmed"][0] == ("True" if ok else "False")
    assert report.gateways[f"{INFRA}/gw"].get("attachedListenerSets", 0) == (1 if ok else 0)
    # a refused ListenerSet opens no port
    ports = {lis.port for lis in served_listeners(inputs.gateways[0], inputs.listener_sets, {
        "team": {"env": "prod"}})}
    assert (8080 in ports) == ok


def test_a_missing_parent_attaches_nothing_and_gets_no_status_from_tulle() -> None:
    inputs = world(gw({"from": "All"}), lset("ls", "team", [TEAM_LISTENER],
                                            parent={"name": "nope", "namespace": INFRA}))
    assert compute_status(inputs).listener_sets == {}
    assert [lis.port for lis in served_listeners(inputs.gateways[0], inputs.listener_sets, {})] == [80]


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        # same port, protocol and hostname as the Gateway's own listener
        (listener("dup", 80, "HTTP", allowed=ALL), "HostnameConflict"),
        # same port, another protocol of the same transport
        (listener("tcp", 80, "TCP", allowed=ALL), "ProtocolConflict"),
        # same port and protocol, another hostname: no conflict
        (listener("other", 80, "HTTP", "team.example", allowed=ALL), ""),
        # UDP shares a port number with TCP-carried listeners
        (listener("udp", 80, "UDP", allowed=ALL), ""),
    ],
)
def test_a_listener_conflicting_with_the_gateways_own_loses(entry: dict[str, Any], reason: str) -> None:
    inputs = world(gw({"from": "All"}), lset("ls", "team", [entry, TEAM_LISTENER]))
    report = compute_status(inputs)
    status = report.listener_sets["team/ls"]
    by_name = {entry["name"]: conditions(entry) for entry in status["listeners"]}
    if reason:
        assert by_name[entry["name"]]["Conflicted"] == ("True", reason)
        assert by_name[entry["name"]]["Accepted"] == ("False", reason)
        assert by_name[entry["name"]]["Programmed"] == ("False", reason)
        assert conditions(status)["Accepted"] == ("True", "ListenersNotValid")
    else:
        assert by_name[entry["name"]]["Conflicted"] == ("False", "NoConflicts")
        assert conditions(status)["Accepted"] == ("True", "Accepted")
    assert by_name["extra"]["Accepted"] == ("True", "Accepted")
    # the Gateway's own listener keeps winning, and its status lists only its own
    gw_status = report.gateways[f"{INFRA}/gw"]
    assert [entry["name"] for entry in gw_status["listeners"]] == ["http"]
    assert conditions(gw_status["listeners"][0])["Conflicted"] == ("False", "NoConflicts")


def test_between_listener_sets_the_older_wins_then_namespace_and_name() -> None:
    dup = listener("x", 9090, "HTTP", "a.example", allowed=ALL)
    inputs = world(
        gw({"from": "All"}),
        lset("b", "team", [dup], created="2024-01-01T00:00:00Z"),
        lset("a", "team", [dup], created="2024-01-02T00:00:00Z"),  # newer: loses
        lset("a", "default", [dup], created="2024-01-01T00:00:00Z"),  # same age, sorts first
    )
    report = compute_status(inputs)
    assert conditions(report.listener_sets["default/a"])["Accepted"] == ("True", "Accepted")
    for key in ("team/b", "team/a"):
        status = report.listener_sets[key]
        assert conditions(status)["Accepted"] == ("False", "ListenersNotValid")
        assert conditions(status["listeners"][0])["Conflicted"] == ("True", "HostnameConflict")
    assert report.gateways[f"{INFRA}/gw"]["attachedListenerSets"] == 1


def test_routes_attach_to_a_listener_set_only_through_a_listener_set_parent_ref() -> None:
    inputs = world(
        gw({"from": "All"}),
        lset("ls", "team", [TEAM_LISTENER,
                            listener("same", 8081, "HTTP", allowed={"namespaces": {"from": "Same"}})]),
        route("to-ls", "team", parents=[ls_ref("ls", "team")],
              rules=[{"backendRefs": [{"name": "web", "port": 8080}]}]),
        route("to-gw", "default", parents=[{"name": "gw", "namespace": INFRA}]),
        route("other-ns", "default", parents=[ls_ref("ls", "team", sectionName="same")]),
        route("missing", "team", parents=[ls_ref("ls", "team", sectionName="nope")]),
    )
    tables = compile_analysis(analyze(inputs))
    on_8080 = GatewayParent(INFRA, "gw", 8080)
    assert picked(tables, host="team.example", parent=on_8080) == "team/to-ls#0"
    assert picked(tables, host="else.example", parent=on_8080) is None  # the listener's hostname
    assert picked(tables, parent=GatewayParent(INFRA, "gw", 80)) == "default/to-gw#0"
    report = compute_status(inputs)
    def accepted(key: str) -> tuple[str, str]:
        return conditions(report.routes[key]["parents"][0])["Accepted"]
    assert accepted("team/to-ls") == ("True", "Accepted")
    assert accepted("default/other-ns") == ("False", "NotAllowedByListeners")  # Same: team only
    assert accepted("team/missing") == ("False", "NoMatchingParent")
    counts = {e["name"]: e["attachedRoutes"] for e in report.listener_sets["team/ls"]["listeners"]}
    assert counts == {"extra": 1, "same": 1}
    assert report.gateways[f"{INFRA}/gw"]["listeners"][0]["attachedRoutes"] == 1


def test_a_refused_listener_set_serves_nothing_and_its_routes_do_not_attach() -> None:
    inputs = world(
        gw({"from": "Same"}),
        lset("ls", "evil", [listener("steal", 80, "HTTP", "victim.example", allowed=ALL)]),
        route("r", "evil", parents=[ls_ref("ls", "evil")], hostnames=["victim.example"]),
    )
    tables = compile_analysis(analyze(inputs))
    assert picked(tables, host="victim.example", parent=GatewayParent(INFRA, "gw", 80)) is None
    assert compute_status(inputs).routes.get("evil/r", {"parents": []})["parents"] == []


def test_listener_set_validation_names_the_field() -> None:
    doc = {"apiVersion": GW, "kind": "ListenerSet", "metadata": {"name": "x", "namespace": "team"},
           "spec": {"parentRef": {"name": "gw"},
                    "listeners": [listener("a", 80, "HTTP"), listener("a", 81, "HTTP")]}}
    with pytest.raises(ConversionError, match="listeners"):
        from_dict(doc)
    doc["spec"] = {"parentRef": {"name": "gw"}, "listeners": []}
    with pytest.raises(ConversionError, match="listeners"):
        from_dict(doc)
    doc["spec"] = {"listeners": [listener("a", 80, "HTTP")]}
    with pytest.raises(ConversionError, match="parentRef"):
        from_dict(doc)
    bad_gw = {"apiVersion": GW, "kind": "Gateway", "metadata": {"name": "g"},
              "spec": {"gatewayClassName": "t", "listeners": [listener()],
                       "allowedListeners": {"namespaces": {"from": "Selector"}}}}
    with pytest.raises(ConversionError, match="selector"):
        from_dict(bad_gw)


def test_the_waypoint_and_the_datapath_take_only_admitted_unconflicted_ports() -> None:
    """The ports the Gateway's address is redirected and served on: an admitted
    ListenerSet's new port, not a refused one's, and no second claim on the Gateway's own."""
    from agent.datapath.l7_needs import l7_keys
    from agent.datapath.view import view_of
    from gatewayapi import RouteCompiler
    from l7proxy.parents import gateway_parents

    base = gw({"from": "Selector", "selector": {"matchLabels": {"env": "prod"}}},
              [listener(allowed=ALL)])
    gateway = replace(base, status=replace(base.status, addresses=(GatewayAddress("10.250.0.5"),)))
    sets = [lset("ok", "team", [TEAM_LISTENER, listener("tcp", 80, "TCP", allowed=ALL)]),
            lset("no", "evil", [listener("evil", 9099, "HTTP", allowed=ALL)])]
    namespaces = [namespace("team", {"env": "prod"}), namespace("evil")]
    parents = gateway_parents([gateway], [], None, sets, namespaces)
    assert sorted(parents) == [("10.250.0.5", 80), ("10.250.0.5", 8080)]
    assert parents[("10.250.0.5", 8080)] == GatewayParent(INFRA, "gw", 8080)
    needs = l7_keys(view_of([gateway, gateway_class(), *sets, *namespaces]), RouteCompiler())
    assert sorted(k.port for k in needs.every) == [80, 8080]
