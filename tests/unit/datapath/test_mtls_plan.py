"""The kernel's mTLS view (agent.datapath.mtls_plan, mtls_maps, the planner, flowevents):
who is enrolled, each pod's mode and its per-port overrides, written in a safe order, and the
tunnel flag becoming IP.encrypted."""

from __future__ import annotations

import ipaddress
import socket
import struct
from typing import Any

import pytest

from agent.datapath.desired import ClusterView, desired_datapath, plan_endpoints, view_of
from agent.datapath.flags import EP_F_MTLS
from agent.datapath.flowevents import CT_F_TUNNEL, EVENT_F_TUNNEL, EventDecoder, FlowEventLayout
from agent.datapath.mtls_maps import write_mtls
from agent.datapath.mtls_plan import (
    MTLS_DISABLE,
    MTLS_F_PORTS,
    MTLS_PERMISSIVE,
    MTLS_STRICT,
    MTLS_TUNNEL_PORT,
    OWN_PORT,
    plan_mtls,
)
from agent.datapath.planner import Change, Planner
from agent.model.convert import from_dict
from agent.model.resource import Resource
from identity.hbone import TUNNEL_OUTBOUND_PORT

IPv4 = ipaddress.IPv4Address
ENROL = {"tulle.io/mtls": "true"}


def namespace(name: str, labels: dict[str, str] | None = None) -> Resource:
    return from_dict({"apiVersion": "v1", "kind": "Namespace",
                      "metadata": {"name": name, "labels": labels or {}}})


def pod(ns: str, name: str, ip: str, labels: dict[str, str] | None = None,
        node: str = "n1") -> Resource:
    return from_dict({"apiVersion": "v1", "kind": "Pod",
                      "metadata": {"namespace": ns, "name": name, "labels": labels or {}},
                      "spec": {"nodeName": node, "containers": [{"name": "c"}]},
                      "status": {"podIP": ip, "phase": "Running"}})


def peer_auth(ns: str, name: str, mode: str | None = None, selector: dict[str, str] | None = None,
              ports: dict[int, str] | None = None, created: str = "2026-01-01T00:00:00Z") -> Resource:
    spec: dict[str, Any] = {}
    if mode:
        spec["mtls"] = {"mode": mode}
    if selector:
        spec["selector"] = {"matchLabels": selector}
    if ports:
        spec["portLevelMtls"] = {str(p): {"mode": m} for p, m in ports.items()}
    return from_dict({"apiVersion": "security.tulle.io/v1", "kind": "PeerAuthentication",
                      "metadata": {"namespace": ns, "name": name, "creationTimestamp": created},
                      "spec": spec})


def plan(*objects: Resource) -> dict[Any, Any]:
    view = view_of(objects)
    return dict(desired_datapath(view, "n1").mtls)


def test_the_tunnel_port_is_the_waypoints() -> None:
    assert MTLS_TUNNEL_PORT == TUNNEL_OUTBOUND_PORT


def test_only_enrolled_namespaces_have_entries() -> None:
    planned = plan(namespace("shop", ENROL), namespace("plain"),
                   namespace("almost", {"tulle.io/mtls": "True"}),
                   pod("shop", "a", "10.244.1.2"), pod("plain", "b", "10.244.1.3"),
                   pod("almost", "c", "10.244.1.4"), pod("shop", "remote", "10.244.2.2", node="n2"),
                   peer_auth("plain", "strict", "STRICT"))
    # Pods of every node: the client side needs its destinations' modes.
    assert planned == {(IPv4("10.244.1.2"), OWN_PORT): (MTLS_PERMISSIVE, 0),
                       (IPv4("10.244.2.2"), OWN_PORT): (MTLS_PERMISSIVE, 0)}


def test_modes_follow_the_peer_authentication_precedence() -> None:
    planned = plan(namespace("shop", ENROL), namespace("tulle-system"),
                   pod("shop", "web", "10.244.1.2", {"app": "web"}),
                   pod("shop", "db", "10.244.1.3", {"app": "db"}),
                   peer_auth("tulle-system", "mesh", "STRICT"),
                   peer_auth("shop", "db-off", "DISABLE", {"app": "db"}))
    assert planned[(IPv4("10.244.1.2"), OWN_PORT)] == (MTLS_STRICT, 0)
    assert planned[(IPv4("10.244.1.3"), OWN_PORT)] == (MTLS_DISABLE, 0)


def test_port_overrides_that_differ_get_entries_and_the_flag() -> None:
    planned = plan(namespace("shop", ENROL),
                   pod("shop", "web", "10.244.1.2", {"app": "web"}),
                   pod("shop", "api", "10.244.1.3", {"app": "api"}),
                   peer_auth("shop", "web", "STRICT", {"app": "web"},
                             {8080: "PERMISSIVE", 9090: "STRICT", 9091: "UNSET"}),
                   # An older selecting policy for api wins; this one's ports are ignored.
                   peer_auth("shop", "api-old", "PERMISSIVE", {"app": "api"},
                             created="2025-01-01T00:00:00Z"),
                   peer_auth("shop", "api-new", "STRICT", {"app": "api"}, {8080: "DISABLE"}))
    web, api = IPv4("10.244.1.2"), IPv4("10.244.1.3")
    assert planned == {
        (web, OWN_PORT): (MTLS_STRICT, MTLS_F_PORTS),
        (web, 8080): (MTLS_PERMISSIVE, 0),  # 9090 repeats the pod's mode; 9091 inherits it
        (api, OWN_PORT): (MTLS_PERMISSIVE, 0),
    }


def test_local_enrolled_endpoints_carry_ep_f_mtls() -> None:
    view = view_of([namespace("shop", ENROL), namespace("plain"),
                    pod("shop", "a", "10.244.1.2"), pod("plain", "b", "10.244.1.3")])
    part = plan_endpoints(view, "n1")
    flags = {str(ip): ep.flags for ip, ep in part.endpoints.items()}
    assert flags == {"10.244.1.2": EP_F_MTLS, "10.244.1.3": 0}


def test_the_planner_follows_enrolment_and_policy_changes() -> None:
    planner = Planner("n1")
    objects: dict[tuple[str, str, str], Resource] = {}

    def step(kind: str, ns: str, name: str, obj: Resource | None) -> dict[Any, Any]:
        planner.update([Change(kind, ns, name, obj)])
        if obj is None:
            objects.pop((kind, ns, name), None)
        else:
            objects[(kind, ns, name)] = obj
        desired = planner.desired()
        assert desired == desired_datapath(view_of(objects.values()), "n1")
        return dict(desired.mtls)

    ip = IPv4("10.244.1.2")
    assert step("Pod", "shop", "a", pod("shop", "a", str(ip), {"app": "a"})) == {}
    assert step("Namespace", "", "shop", namespace("shop", ENROL)) == {
        (ip, OWN_PORT): (MTLS_PERMISSIVE, 0)}
    pa = peer_auth("shop", "a", "STRICT", {"app": "a"}, {7070: "DISABLE"})
    assert step("PeerAuthentication", "shop", "a", pa) == {
        (ip, OWN_PORT): (MTLS_STRICT, MTLS_F_PORTS), (ip, 7070): (MTLS_DISABLE, 0)}
    assert step("PeerAuthentication", "shop", "a", None) == {(ip, OWN_PORT): (MTLS_PERMISSIVE, 0)}
    assert step("Namespace", "", "shop", namespace("shop")) == {}


def test_an_empty_view_plans_nothing() -> None:
    assert plan_mtls([], {}, []) == {}
    assert desired_datapath(ClusterView(), "n1").mtls == {}


class FakeTable:
    """Records the order of writes and deletes, keyed like mtls_v1."""

    class Key:
        addr = 0
        port = 0

    class Leaf:
        mode = 0
        flags = 0

    def __init__(self) -> None:
        self.log: list[tuple[str, tuple[int, int], Any]] = []

    def __setitem__(self, key: Any, leaf: Any) -> None:
        self.log.append(("set", (key.addr, key.port), (leaf.mode, leaf.flags)))

    def __delitem__(self, key: Any) -> None:
        self.log.append(("del", (key.addr, key.port), None))


class FakeDp:
    def __init__(self) -> None:
        self.mtls = FakeTable()

    def table(self, name: str) -> FakeTable:
        assert name == "mtls_v1"
        return self.mtls


def test_writes_never_announce_ports_that_are_not_there() -> None:
    dp = FakeDp()
    ip = IPv4("10.244.1.2")
    write_mtls(dp, {(ip, OWN_PORT): (MTLS_STRICT, MTLS_F_PORTS), (ip, 8080): (MTLS_DISABLE, 0)},
               [(ip, 9090), (IPv4("10.244.1.3"), OWN_PORT)])  # type: ignore[arg-type]
    ops = [(op, socket.ntohs(port)) for op, (_, port), _ in dp.mtls.log]
    # The port entry before the flag that announces it; a gone pod's own entry before the
    # port entries it announced.
    assert ops == [("set", 8080), ("set", 0), ("del", 0), ("del", 9090)]


def _record(**fields: Any) -> bytes:
    ev = FlowEventLayout()
    ev.type, ev.verdict, ev.proto, ev.dir, ev.obs_point = 1, 1, 6, 2, 3
    for name, value in fields.items():
        setattr(ev, name, value)
    return bytes(ev)


def _be32(ip: str) -> int:
    return int(struct.unpack("=I", socket.inet_aton(ip))[0])


@pytest.mark.parametrize("flags,encrypted", [(EVENT_F_TUNNEL, True), (0, False)])
def test_the_tunnel_flag_is_ip_encrypted(flags: int, encrypted: bool) -> None:
    raw = _record(saddr=_be32("10.244.1.2"), daddr=_be32("10.244.2.3"),
                  dport=socket.htons(8080), flags=flags)
    flow = EventDecoder("n1").decode(raw)
    assert flow.ip is not None and flow.ip.encrypted is encrypted
    assert flow.ip.destination == "10.244.2.3"


def test_an_expired_tunnelled_connection_names_its_real_destination() -> None:
    from types import SimpleNamespace

    tuple4 = SimpleNamespace(saddr=_be32("10.244.1.2"), daddr=_be32("10.244.1.254"),
                             sport=socket.htons(40000), dport=socket.htons(TUNNEL_OUTBOUND_PORT),
                             proto=6)
    key = SimpleNamespace(tuple=tuple4, dir=1)
    entry = SimpleNamespace(flags=CT_F_TUNNEL, backend_addr=_be32("10.244.2.3"),
                            backend_port=socket.htons(8080), src_identity=300, dst_identity=400,
                            bytes_fwd=1, bytes_rev=2, packets_fwd=1, packets_rev=1,
                            last_seen_ns=2, created_ns=1)
    flow = EventDecoder("n1").decode_expired(key, entry, 10)
    assert flow.ip is not None
    assert (flow.ip.destination, flow.ip.encrypted) == ("10.244.2.3", True)
    assert flow.l4.destination_port == 8080  # type: ignore[union-attr]
