"""TCPRoute and UDPRoute weighted translation in the kernel (BPF_PROG_TEST_RUN): the entries
``plan_route_entries`` plans from a Gateway and its routes, written by ``maps.write_service``
as the applier writes them, translate a pod's new TCP and UDP flows to the Gateway address
(from_pod.c) and an external client's (from_netdev.c, LB_F_EXTERNAL) to the backendRefs'
endpoints in proportion to their weights; weight 0 is never chosen.

Bound: each endpoint's count over N new flows is within 5 standard deviations of the
binomial mean N * share (share: its slots / 1021, itself within one slot of the weight's)."""

from __future__ import annotations

import ipaddress
import math
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether

from agent.datapath import drop_reasons, maps
from agent.datapath.l4_routes import plan_route_entries
from agent.datapath.maglev import MAGLEV_SIZE
from agent.datapath.services import ServiceEntry, ServiceKey
from agent.datapath.view import view_of
from agent.model.convert import from_dict
from agent.model.resource import Resource
from tests.bpf.conftest import loaded_datapath
from tests.bpf.test_datapath import Runner, client_endpoint
from tests.bpf.test_nodeport import Netdev

pytestmark = pytest.mark.bpf

TC_ACT_OK = 0
CLIENT = "10.244.1.2"  # test_datapath's client pod
EXTERNAL_CLIENT = "10.240.0.2"
ADDRESS = "10.240.0.241"
FLOWS = 2000
REFUSED = "refused"
GW = "gateway.networking.k8s.io/v1"


def _doc(kind: str, name: str, spec: dict[str, Any], ns: str = "default", **more: Any) -> Any:
    api = {"Service": "v1", "EndpointSlice": "discovery.k8s.io/v1"}.get(kind, GW)
    return from_dict({"apiVersion": api, "kind": kind,
                      "metadata": {"name": name, "namespace": ns, **more.pop("meta", {})},
                      **({"spec": spec} if spec else {}), **more})


def _world(kind: str, weights: dict[str, int]) -> list[Resource]:
    protocol = "TCP" if kind == "TCPRoute" else "UDP"
    objects = [
        from_dict({"apiVersion": GW, "kind": "GatewayClass", "metadata": {"name": "tulle"},
                   "spec": {"controllerName": "tulle.io/gateway-controller"}}),
        _doc("Gateway", "gw", {"gatewayClassName": "tulle", "listeners": [
            {"name": "l", "port": 5432, "protocol": protocol,
             "allowedRoutes": {"namespaces": {"from": "All"}}}]}, ns="infra",
             status={"addresses": [{"type": "IPAddress", "value": ADDRESS}]}),
        _doc(kind, "r", {"parentRefs": [{"name": "gw", "namespace": "infra"}], "rules": [
            {"backendRefs": [{"name": n, "port": 5432, "weight": w} for n, w in weights.items()]}
        ]}),
    ]
    for i, name in enumerate(weights):
        if name == "missing":  # no such Service: ResolvedRefs False, its share refused
            continue
        objects.append(_doc("Service", name, {"clusterIP": f"10.96.0.{60 + i}", "ports": [
            {"name": "p", "port": 5432, "protocol": protocol}]}))
        endpoints = [f"10.244.2.{10 * (i + 1) + j}" for j in range(2 if name == "a" else 1)]
        objects.append(_doc(
            "EndpointSlice", f"{name}-1", {}, meta={"labels": {
                "kubernetes.io/service-name": name}},
            addressType="IPv4", ports=[{"name": "p", "port": 15432, "protocol": protocol}],
            endpoints=[{"addresses": [ip], "conditions": {"ready": True}} for ip in endpoints]))
    return objects


def _write(dp: Any, entry: ServiceEntry) -> None:
    key = entry.key
    maps.write_service(dp, key.vip, key.port, key.protocol,
                       [(b.ip, b.port) for b in entry.backends], entry.table,
                       entry.affinity_timeout, None, entry.flags)


def _planned(kind: str, weights: dict[str, int]) -> ServiceEntry:
    protocol = 6 if kind == "TCPRoute" else 17
    entries = plan_route_entries(view_of(_world(kind, weights))).entries
    return entries[ServiceKey(ipaddress.IPv4Address(ADDRESS), 5432, protocol)]


def _within_binomial_bound(seen: Counter[str], entry: ServiceEntry, flows: int) -> None:
    slots = Counter(entry.table)
    names = [str(b.ip) for b in entry.backends] + [REFUSED]  # len(backends): refused
    expected = {names[i]: n / MAGLEV_SIZE for i, n in slots.items()}
    assert set(seen) == set(expected), (seen, expected)
    assert sum(seen.values()) == flows
    for ip, share in expected.items():
        sd = math.sqrt(flows * share * (1 - share))
        assert abs(seen[ip] - flows * share) <= 5 * sd, (ip, seen[ip], flows * share)


def _l4(kind: str, sport: int) -> Any:
    return TCP(sport=sport, dport=5432, flags="S") if kind == "TCPRoute" else (
        UDP(sport=sport, dport=5432) / b"q")


@pytest.mark.parametrize("kind", ["TCPRoute", "UDPRoute"])
def test_pods_new_flows_follow_the_weights(dp: Runner, kind: str) -> None:
    entry = _planned(kind, {"a": 3, "b": 1, "c": 0})
    _write(dp.dp, entry)
    client_endpoint(dp)
    seen: Counter[str] = Counter()
    for sport in range(20000, 20000 + FLOWS):
        packet = Ether() / IP(src=CLIENT, dst=ADDRESS) / _l4(kind, sport)
        out = dp.from_pod(packet)
        assert out.verdict == TC_ACT_OK
        assert out.packet[IP].src == CLIENT
        assert out.packet[IP].payload.dport == 15432
        seen[out.packet[IP].dst] += 1
    assert "10.244.2.30" not in seen  # c: weight 0
    _within_binomial_bound(seen, entry, FLOWS)


@pytest.fixture(scope="module")
def uplink() -> Iterator[Netdev]:
    with loaded_datapath() as dp:
        netdev = Netdev(dp)
        try:
            yield netdev
        finally:
            maps.write_node_addresses(dp, None, None)
            netdev.bpf.cleanup()


@pytest.mark.parametrize("kind", ["TCPRoute", "UDPRoute"])
def test_external_clients_new_flows_follow_the_weights(uplink: Netdev, kind: str) -> None:
    uplink.reset()
    entry = _planned(kind, {"a": 1, "b": 1})
    _write(uplink.dp, entry)
    seen: Counter[str] = Counter()
    for sport in range(30000, 30000 + FLOWS // 2):
        out = uplink.arrive(Ether() / IP(src=EXTERNAL_CLIENT, dst=ADDRESS) / _l4(kind, sport))
        assert out.verdict == TC_ACT_OK
        seen[out.packet[IP].dst] += 1
    _within_binomial_bound(seen, entry, FLOWS // 2)


@pytest.mark.parametrize("kind", ["TCPRoute", "UDPRoute"])
def test_a_missing_backends_share_is_refused_by_weight(dp: Runner, kind: str) -> None:
    entry = _planned(kind, {"a": 1, "missing": 1})
    _write(dp.dp, entry)
    client_endpoint(dp)
    seen: Counter[str] = Counter()
    for sport in range(21000, 21000 + FLOWS // 2):
        out = dp.from_pod(Ether() / IP(src=CLIENT, dst=ADDRESS) / _l4(kind, sport))
        assert out.verdict == TC_ACT_OK
        if out.packet[IP].dst != ADDRESS:
            seen[out.packet[IP].dst] += 1
            continue
        # Refused as a Service without endpoints is: a drop record, the packet untranslated
        # (no node route takes it further: another node's uplink drops a pod source).
        (event,) = out.events
        assert event.verdict == 2
        assert drop_reasons.by_code(event.drop_reason).name == "SERVICE_BACKEND_NOT_FOUND"
        seen[REFUSED] += 1
    _within_binomial_bound(seen, entry, FLOWS // 2)


def test_another_port_of_the_gateway_address_is_not_translated(dp: Runner) -> None:
    _write(dp.dp, _planned("TCPRoute", {"a": 1}))
    client_endpoint(dp)
    out = dp.from_pod(Ether() / IP(src=CLIENT, dst=ADDRESS) / TCP(sport=1, dport=5433, flags="S"))
    assert out.packet[IP].dst == ADDRESS and out.packet[TCP].dport == 5433
