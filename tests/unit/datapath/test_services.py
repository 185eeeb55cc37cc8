"""plan_services and diff_plans: Kubernetes service semantics, one rule per table."""

from __future__ import annotations

import random
from ipaddress import IPv4Address
from typing import Any

import pytest

from agent.datapath.maglev import maglev_table
from agent.datapath.services import (
    PROTOCOLS,
    Backend,
    PlanDiff,
    ServiceKey,
    ServicePlan,
    diff_plans,
    plan_services,
)
from agent.model.convert import from_dict
from agent.model.core import EndpointSlice, Service

VIP = IPv4Address("10.96.0.10")
HTTP = ServiceKey(VIP, 80, 6)


def service(
    name: str = "web",
    *,
    ns: str = "shop",
    cluster_ip: str | None = "10.96.0.10",
    ports: list[dict[str, Any]] | None = None,
    **spec: Any,
) -> Service:
    body: dict[str, Any] = {
        "ports": ports if ports is not None else [{"name": "http", "port": 80, "targetPort": 8080}],
        **spec,
    }
    if cluster_ip is not None:
        body["clusterIP"] = cluster_ip
    obj = from_dict(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": ns},
            "spec": body,
        }
    )
    assert isinstance(obj, Service)
    return obj


def ep(ip: str, **conditions: bool) -> dict[str, Any]:
    """An endpoint; ``ep("10.0.0.1", ready=False, serving=True, terminating=True)``."""
    return {"addresses": [ip], "conditions": conditions}


def endpoint_slice(
    *endpoints: dict[str, Any],
    name: str = "web-abc",
    service_name: str | None = "web",
    ns: str = "shop",
    address_type: str = "IPv4",
    ports: list[dict[str, Any]] | None = None,
) -> EndpointSlice:
    labels = {"kubernetes.io/service-name": service_name} if service_name else {}
    obj = from_dict(
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {"name": name, "namespace": ns, "labels": labels},
            "addressType": address_type,
            "endpoints": list(endpoints),
            "ports": ports if ports is not None else [{"name": "http", "port": 8080}],
        }
    )
    assert isinstance(obj, EndpointSlice)
    return obj


def backends(plan: ServicePlan, key: ServiceKey = HTTP) -> list[str]:
    return [str(b) for b in plan.entries[key].backends]


# --- which services get entries ---------------------------------------------------------


def test_one_entry_per_cluster_ip_port_and_protocol() -> None:
    svc = service(
        ports=[
            {"name": "http", "port": 80, "targetPort": 8080},
            {"name": "dns", "port": 53, "protocol": "UDP"},
            {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
            {"name": "sig", "port": 3868, "protocol": "SCTP"},
        ]
    )
    plan = plan_services([svc], [])
    assert sorted(plan.entries) == [
        ServiceKey(VIP, 53, 6),
        ServiceKey(VIP, 53, 17),
        ServiceKey(VIP, 80, 6),
        ServiceKey(VIP, 3868, 132),
    ]
    entry = plan.entries[ServiceKey(VIP, 53, 17)]
    assert (entry.namespace, entry.name, entry.port_name) == ("shop", "web", "dns")
    assert str(entry.key) == "10.96.0.10:53/UDP"
    assert plan.errors == ()


@pytest.mark.parametrize(
    "svc",
    [
        pytest.param(service(cluster_ip="None", ports=[]), id="headless"),
        pytest.param(service(cluster_ip="None"), id="headless-with-ports"),
        pytest.param(service(cluster_ip=None), id="no-cluster-ip-yet"),
    ],
)
def test_services_without_a_cluster_ip_get_nothing(svc: Service) -> None:
    plan = plan_services([svc], [endpoint_slice(ep("10.0.0.1"))])
    assert plan == ServicePlan()


def test_ipv6_cluster_ip_is_noted_and_skipped() -> None:
    plan = plan_services([service(cluster_ip="fd00::10")], [])
    assert plan.entries == {}
    assert plan.errors == (
        "Service shop/web: ClusterIP fd00::10 is IPv6; only IPv4 is load-balanced",
    )


def test_two_services_on_one_key_first_by_name_wins() -> None:
    plan = plan_services([service("zz"), service("aa")], [])
    assert plan.entries[HTTP].name == "aa"
    assert plan.errors == ("Service shop/zz: 10.96.0.10:80/TCP is already served by shop/aa",)


# --- which slices and ports feed a service port -----------------------------------------


@pytest.mark.parametrize(
    ("slice_", "expected"),
    [
        pytest.param(endpoint_slice(ep("10.0.0.1")), ["10.0.0.1:8080"], id="owned"),
        pytest.param(endpoint_slice(ep("10.0.0.1"), ns="other"), [], id="other-namespace"),
        pytest.param(endpoint_slice(ep("10.0.0.1"), service_name="api"), [], id="other-service"),
        pytest.param(endpoint_slice(ep("10.0.0.1"), service_name=None), [], id="no-label"),
        pytest.param(
            endpoint_slice(ep("10.0.0.1"), ports=[{"name": "metrics", "port": 9090}]),
            [],
            id="no-port-of-that-name",
        ),
        pytest.param(
            endpoint_slice(
                ep("10.0.0.1"), ports=[{"name": "http", "port": 8080, "protocol": "UDP"}]
            ),
            [],
            id="protocol-differs",
        ),
        pytest.param(
            endpoint_slice(ep("10.0.0.1"), ports=[{"name": "http"}]), [], id="port-without-number"
        ),
        pytest.param(
            endpoint_slice(
                ep("10.0.0.1"),
                ports=[{"name": "metrics", "port": 9090}, {"name": "http", "port": 8443}],
            ),
            ["10.0.0.1:8443"],
            id="slice-port-number-wins",
        ),
    ],
)
def test_slice_and_port_matching(slice_: EndpointSlice, expected: list[str]) -> None:
    assert backends(plan_services([service()], [slice_])) == expected


def test_unnamed_single_port_matches_the_unnamed_slice_port() -> None:
    svc = service(ports=[{"port": 80, "targetPort": "web"}])
    slices = [
        endpoint_slice(ep("10.0.0.1"), ports=[{"name": "", "port": 3000}]),
        endpoint_slice(ep("10.0.0.2"), name="web-named", ports=[{"name": "http", "port": 80}]),
    ]
    plan = plan_services([svc], slices)
    assert backends(plan) == ["10.0.0.1:3000"]
    assert plan.entries[HTTP].port_name == ""


def test_each_service_port_takes_its_own_slice_port() -> None:
    svc = service(
        ports=[{"name": "http", "port": 80}, {"name": "grpc", "port": 9000, "targetPort": "grpc"}]
    )
    slice_ = endpoint_slice(
        ep("10.0.0.1"), ports=[{"name": "http", "port": 8080}, {"name": "grpc", "port": 50051}]
    )
    plan = plan_services([svc], [slice_])
    assert backends(plan) == ["10.0.0.1:8080"]
    assert backends(plan, ServiceKey(VIP, 9000, 6)) == ["10.0.0.1:50051"]


# --- endpoint readiness -----------------------------------------------------------------

READY = ep("10.0.0.1", ready=True)
UNSET = ep("10.0.0.2")  # unset ready means ready
NOT_READY = ep("10.0.0.3", ready=False)
DRAINING = ep("10.0.0.4", ready=False, serving=True, terminating=True)
DRAINING_NOT_SERVING = ep("10.0.0.5", ready=False, serving=False, terminating=True)
SERVING_NOT_TERMINATING = ep("10.0.0.6", ready=False, serving=True)


@pytest.mark.parametrize(
    ("endpoints", "expected"),
    [
        pytest.param([READY, UNSET, NOT_READY], ["10.0.0.1", "10.0.0.2"], id="ready-only"),
        pytest.param([READY, DRAINING], ["10.0.0.1"], id="ready-beats-draining"),
        pytest.param([NOT_READY, DRAINING], ["10.0.0.4"], id="fallback-to-draining"),
        pytest.param([DRAINING_NOT_SERVING], [], id="terminating-not-serving"),
        pytest.param([SERVING_NOT_TERMINATING], [], id="serving-not-terminating"),
        pytest.param([NOT_READY], [], id="none-ready"),
        pytest.param([], [], id="no-endpoints"),
    ],
)
def test_readiness(endpoints: list[dict[str, Any]], expected: list[str]) -> None:
    plan = plan_services([service()], [endpoint_slice(*endpoints)])
    assert backends(plan) == [f"{ip}:8080" for ip in expected]
    entry = plan.entries[HTTP]
    assert entry.table == (maglev_table(backends(plan)) if expected else ())


def test_fallback_considers_all_slices_of_the_port() -> None:
    slices = [endpoint_slice(DRAINING), endpoint_slice(READY, name="web-def")]
    assert backends(plan_services([service()], slices)) == ["10.0.0.1:8080"]


def test_duplicates_across_slices_are_one_backend_ready_if_any_copy_is() -> None:
    slices = [
        endpoint_slice(ep("10.0.0.2"), ep("10.0.0.1", ready=False)),
        endpoint_slice(ep("10.0.0.1", ready=True), ep("10.0.0.2"), name="web-def"),
    ]
    assert backends(plan_services([service()], slices)) == ["10.0.0.1:8080", "10.0.0.2:8080"]


def test_only_the_first_address_of_an_endpoint_is_used() -> None:
    slice_ = endpoint_slice({"addresses": ["10.0.0.1", "10.0.0.9"]})
    assert backends(plan_services([service()], [slice_])) == ["10.0.0.1:8080"]


def test_non_ipv4_slices_are_ignored_with_one_note_per_service() -> None:
    slices = [
        endpoint_slice(ep("10.0.0.1")),
        endpoint_slice(ep("fd00::1"), name="web-v6a", address_type="IPv6"),
        endpoint_slice(ep("fd00::2"), name="web-v6b", address_type="IPv6"),
        endpoint_slice(ep("db.example.com"), name="web-fqdn", address_type="FQDN"),
    ]
    svc = service(ports=[{"name": "http", "port": 80}, {"name": "https", "port": 443}])
    plan = plan_services([svc], slices)
    assert backends(plan) == ["10.0.0.1:8080"]
    assert plan.errors == (
        "Service shop/web: FQDN EndpointSlices ignored; only IPv4 is load-balanced",
        "Service shop/web: IPv6 EndpointSlices ignored; only IPv4 is load-balanced",
    )


# --- entry contents ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "timeout"),
    [
        pytest.param({}, 0, id="no-affinity"),
        pytest.param({"sessionAffinity": "None"}, 0, id="affinity-none"),
        pytest.param({"sessionAffinity": "ClientIP"}, 10800, id="client-ip-default"),
        pytest.param(
            {
                "sessionAffinity": "ClientIP",
                "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}},
            },
            60,
            id="client-ip-60s",
        ),
    ],
)
def test_session_affinity(spec: dict[str, Any], timeout: int) -> None:
    plan = plan_services([service(**spec)], [])
    assert plan.entries[HTTP].affinity_timeout == timeout


def test_backends_are_sorted_by_address_and_the_table_indexes_them() -> None:
    ips = ["10.0.0.10", "10.0.0.9", "10.0.1.1", "10.0.0.100"]
    entry = plan_services([service()], [endpoint_slice(*map(ep, ips))]).entries[HTTP]
    assert entry.backends == tuple(sorted(Backend(IPv4Address(ip), 8080) for ip in ips))
    assert [str(b) for b in entry.backends] == [
        "10.0.0.9:8080",
        "10.0.0.10:8080",
        "10.0.0.100:8080",
        "10.0.1.1:8080",
    ]
    assert entry.table == maglev_table([str(b) for b in entry.backends])
    assert set(entry.table) == {0, 1, 2, 3}


def test_no_endpoints_is_an_entry_with_no_backends() -> None:
    entry = plan_services([service()], []).entries[HTTP]
    assert (entry.backends, entry.table) == ((), ())


def test_plan_does_not_depend_on_input_order() -> None:
    services = [service(f"s{i}", cluster_ip=f"10.96.0.{i}") for i in range(1, 6)]
    slices = [
        endpoint_slice(
            ep(f"10.0.{i}.{j}"),
            ep(f"10.0.{i}.9", ready=False),
            name=f"s{i}-{j}",
            service_name=f"s{i}",
        )
        for i in range(1, 6)
        for j in range(1, 4)
    ]
    expected = plan_services(services, slices)
    rng = random.Random(7)
    for _ in range(5):
        rng.shuffle(services)
        rng.shuffle(slices)
        assert plan_services(services, slices) == expected


def test_previous_plan_only_saves_work() -> None:
    slices = [endpoint_slice(ep("10.0.0.1"), ep("10.0.0.2"))]
    svc = service(ports=[{"name": "http", "port": 80}, {"name": "https", "port": 443}])
    first = plan_services([svc], slices)
    changed = [endpoint_slice(ep("10.0.0.1"), ep("10.0.0.2"), ep("10.0.0.3"))]
    second = plan_services([svc], changed, previous=first)
    assert second == plan_services([svc], changed)
    same = plan_services([svc], slices, previous=first)
    assert same.entries[HTTP].table is first.entries[HTTP].table


def test_protocol_numbers() -> None:
    assert PROTOCOLS == {"TCP": 6, "UDP": 17, "SCTP": 132}


# --- diff_plans -------------------------------------------------------------------------


def test_diff_upserts_new_and_changed_entries_and_deletes_gone_keys() -> None:
    web = service(ports=[{"name": "http", "port": 80}, {"name": "https", "port": 443}])
    api = service("api", cluster_ip="10.96.0.20")
    old = plan_services(
        [web, api],
        [
            endpoint_slice(ep("10.0.0.1")),
            endpoint_slice(ep("10.0.1.1"), name="api-1", service_name="api"),
        ],
    )
    web_v2 = service(ports=[{"name": "http", "port": 80}, {"name": "admin", "port": 8081}])
    db = service("db", cluster_ip="10.96.0.30", sessionAffinity="ClientIP")
    new = plan_services(
        [web_v2, api, db],
        [
            endpoint_slice(ep("10.0.0.1"), ep("10.0.0.2")),
            endpoint_slice(ep("10.0.1.1"), name="api-1", service_name="api"),
        ],
    )
    diff = diff_plans(old, new)
    assert [e.key for e in diff.upsert] == [
        ServiceKey(VIP, 80, 6),  # backends changed
        ServiceKey(VIP, 8081, 6),  # new port
        ServiceKey(IPv4Address("10.96.0.30"), 80, 6),  # new service
    ]
    assert diff.upsert[0] == new.entries[HTTP]
    assert diff.delete == (ServiceKey(VIP, 443, 6),)


def test_diff_of_equal_plans_is_empty() -> None:
    plan = plan_services([service()], [endpoint_slice(ep("10.0.0.1"))])
    assert diff_plans(plan, plan) == PlanDiff()
    assert diff_plans(ServicePlan(), ServicePlan()) == PlanDiff()


def test_diff_notices_affinity_only_changes() -> None:
    old = plan_services([service()], [])
    new = plan_services([service(sessionAffinity="ClientIP")], [])
    assert diff_plans(old, new) == PlanDiff(upsert=(new.entries[HTTP],))


def test_diff_from_and_to_the_empty_plan() -> None:
    plan = plan_services([service(ports=[{"name": "a", "port": 1}, {"name": "b", "port": 2}])], [])
    keys = tuple(sorted(plan.entries))
    assert diff_plans(ServicePlan(), plan) == PlanDiff(upsert=tuple(plan.entries[k] for k in keys))
    assert diff_plans(plan, ServicePlan()) == PlanDiff(delete=keys)


# --- Backends: the compact sequence an entry's backends come in -------------------------


def test_backends_stand_in_for_a_tuple_of_backend_objects() -> None:
    from agent.datapath.services import Backends

    pairs = [Backend(IPv4Address("10.0.0.9"), 80), Backend(IPv4Address("10.0.0.10"), 8080)]
    compact = Backends(pairs)
    assert compact == tuple(pairs) and tuple(pairs) == compact and compact == pairs
    assert list(compact) == pairs and compact[1] == pairs[1] and compact[-1] == pairs[-1]
    assert isinstance(compact[0].ip, IPv4Address) and compact[1:] == (pairs[1],)
    assert len(compact) == 2 and hash(compact) == hash(tuple(pairs))
    assert compact != tuple(pairs[:1]) and compact != (pairs[1], pairs[0]) and compact != "x"
    assert Backends() == () and not Backends() and compact == Backends(pairs)
    assert (compact.ips.tolist(), compact.ports.tolist()) == ([0x0A000009, 0x0A00000A], [80, 8080])
    assert "10.0.0.10" in repr(compact)


def test_one_address_on_two_port_numbers_is_two_backends_in_address_then_port_order() -> None:
    """Backends sort as (address, port) by number, never as text, and the same address
    serving two slices with different numbers for the port is two backends."""
    slices = [
        endpoint_slice(ep("10.0.0.10"), ep("10.0.0.9"), name="a",
                       ports=[{"name": "http", "port": 9000}]),
        endpoint_slice(ep("10.0.0.9"), name="b", ports=[{"name": "http", "port": 80}]),
        endpoint_slice(ep("10.0.0.9"), name="c", ports=[{"name": "http", "port": 80}]),
    ]
    plan = plan_services([service()], slices)
    assert backends(plan) == ["10.0.0.9:80", "10.0.0.9:9000", "10.0.0.10:9000"]
    assert plan.entries[HTTP].table == maglev_table(backends(plan))


def test_many_service_entries_is_service_entries_one_by_one() -> None:
    """The batch (one Maglev call for all) answers each request as alone, notes included."""
    from agent.datapath.services import many_service_entries, service_entries

    services = [
        service("web", ports=[{"name": "http", "port": 80}, {"name": "https", "port": 443}]),
        service("none", cluster_ip="None"),
        service("v6", cluster_ip="fd00::10"),
        service("empty", cluster_ip="10.96.0.11"),
        service("drain", cluster_ip="10.96.0.12"),
    ]
    slices = {
        "web": [endpoint_slice(ep("10.0.0.1"), ep("10.0.0.2"),
                               ports=[{"name": "http", "port": 8080},
                                      {"name": "https", "port": 8443}]),
                endpoint_slice(ep("fd00::1"), name="web-v6", address_type="IPv6")],
        "drain": [endpoint_slice(ep("10.0.0.3", ready=False, serving=True, terminating=True),
                                 name="d", service_name="drain")],
    }
    requests = [(s, slices.get(s.metadata.name, []), {}) for s in services]
    assert many_service_entries(requests) == [service_entries(*r) for r in requests]
    web, none, v6, empty, drain = many_service_entries(requests)
    assert [len(e.backends) for e in web.entries] == [2, 2] and web.errors
    assert (none.entries, v6.entries, v6.errors != ()) == ((), (), True)
    assert empty.entries[0].backends == () and [str(b) for b in drain.entries[0].backends] == [
        "10.0.0.3:8080"
    ]
