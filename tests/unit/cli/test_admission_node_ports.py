"""NodePort allocation at admission (lab/apiserver/node_ports.py): every port of a NodePort or
LoadBalancer Service gets a node port in 30000-32767, LoadBalancer + Local a health-check port;
requested ports are checked with the API server's messages; delete and type change release."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lab.apiserver.model_admission import AdmissionError, admit
from lab.apiserver.node_ports import NODE_PORT_RANGE
from lab.store import Store


def svc(
    name: str, type_: str = "NodePort", node_ports: tuple[int | None, ...] = (None,),
    **extra: Any,
) -> dict[str, Any]:
    ports = []
    for i, node_port in enumerate(node_ports):
        port: dict[str, Any] = {"name": f"p{i}", "port": 80 + i}
        if node_port is not None:
            port["nodePort"] = node_port
        ports.append(port)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"type": type_, "ports": ports, **extra},
    }


@pytest.fixture
def store(tmp_path: Path) -> Any:
    with Store(tmp_path / "s.db") as s:
        s.apply_many([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}}])
        yield s


def apply(store: Store, *docs: dict[str, Any]) -> list[dict[str, Any]]:
    admitted = admit(store, [(d["metadata"]["name"], d) for d in docs])
    store.apply_many(admitted)
    return admitted


def node_ports(obj: dict[str, Any]) -> list[int]:
    return [p["nodePort"] for p in obj["spec"]["ports"]]


def test_every_port_of_nodeport_and_loadbalancer_services_gets_a_distinct_node_port(
    store: Store,
) -> None:
    a, b = apply(store, svc("a", node_ports=(None, None)), svc("b", "LoadBalancer"))
    ports = node_ports(a) + node_ports(b)
    assert len(set(ports)) == 3 and all(p in NODE_PORT_RANGE for p in ports)
    assert "healthCheckNodePort" not in b["spec"]  # Cluster policy: no health check port


def test_a_clusterip_service_gets_none(store: Store) -> None:
    (c,) = apply(store, svc("c", "ClusterIP"))
    assert "nodePort" not in c["spec"]["ports"][0]


def test_loadbalancer_local_gets_a_health_check_port_apart_from_its_node_ports(
    store: Store,
) -> None:
    (lb,) = apply(store, svc("lb", "LoadBalancer", externalTrafficPolicy="Local"))
    hc = lb["spec"]["healthCheckNodePort"]
    assert hc in NODE_PORT_RANGE and hc not in node_ports(lb)


def test_a_requested_port_is_kept_and_refused_to_another_service(store: Store) -> None:
    (a,) = apply(store, svc("a", node_ports=(30080,)))
    assert node_ports(a) == [30080]
    with pytest.raises(AdmissionError) as err:
        admit(store, [("b", svc("b", node_ports=(30080,)))])
    assert err.value.errors == [
        "Service default/b: spec.ports[0].nodePort: Invalid value: 30080: "
        "provided port is already allocated"
    ]
    with pytest.raises(AdmissionError, match="already allocated"):
        admit(store, [("b", svc("b", "LoadBalancer", externalTrafficPolicy="Local",
                                healthCheckNodePort=30080))])


@pytest.mark.parametrize("port", [29999, 32768, 80])
def test_a_port_outside_the_range_is_refused_with_the_range(store: Store, port: int) -> None:
    with pytest.raises(AdmissionError, match=(
        rf"spec.ports\[0\].nodePort: Invalid value: {port}: provided port is not in the valid "
        r"range. The range of valid ports is 30000-32767"
    )):
        admit(store, [("a", svc("a", node_ports=(port,)))])
    assert store.get("Service", "default", "a") is None


def test_one_batch_never_hands_out_a_port_twice(store: Store) -> None:
    with pytest.raises(AdmissionError, match="30100: provided port is already allocated"):
        admit(store, [("a", svc("a", node_ports=(30100,))), ("b", svc("b", node_ports=(30100,)))])
    with pytest.raises(AdmissionError, match=r"spec.ports\[1\].nodePort: Duplicate value: 30101"):
        admit(store, [("a", svc("a", node_ports=(30101, 30101)))])


def test_health_check_port_may_not_reuse_the_services_own_node_port(store: Store) -> None:
    with pytest.raises(AdmissionError, match="spec.healthCheckNodePort: Invalid value: 30200"):
        admit(store, [("a", svc("a", "LoadBalancer", node_ports=(30200,),
                                externalTrafficPolicy="Local", healthCheckNodePort=30200))])


def test_an_update_without_node_ports_keeps_the_allocated_ones(store: Store) -> None:
    (first,) = apply(store, svc("a", "LoadBalancer", externalTrafficPolicy="Local"))
    (again,) = apply(store, svc("a", "LoadBalancer", externalTrafficPolicy="Local"))
    assert node_ports(again) == node_ports(first)
    assert again["spec"]["healthCheckNodePort"] == first["spec"]["healthCheckNodePort"]


def test_delete_releases_the_ports(store: Store) -> None:
    apply(store, svc("a", node_ports=(30300,)))
    store.delete("Service", "default", "a")
    (b,) = apply(store, svc("b", node_ports=(30300,)))
    assert node_ports(b) == [30300]


def test_type_change_to_clusterip_releases_the_ports_even_when_sent_back(store: Store) -> None:
    (a,) = apply(store, svc("a", "LoadBalancer", node_ports=(30400,),
                            externalTrafficPolicy="Local", healthCheckNodePort=30401))
    # A read-modify-write of `type` alone sends the allocated fields back unchanged.
    back = {**a, "spec": {**a["spec"], "type": "ClusterIP"}}
    (c,) = apply(store, back)
    assert "nodePort" not in c["spec"]["ports"][0]
    assert not {"healthCheckNodePort", "externalTrafficPolicy"} & c["spec"].keys()
    (b,) = apply(store, svc("b", "LoadBalancer", node_ports=(30400,),
                            externalTrafficPolicy="Local", healthCheckNodePort=30401))
    assert node_ports(b) == [30400] and b["spec"]["healthCheckNodePort"] == 30401


def test_type_change_with_a_new_node_port_is_refused(store: Store) -> None:
    apply(store, svc("a", node_ports=(30500,)))
    with pytest.raises(AdmissionError, match="may not be used when type is ClusterIP"):
        admit(store, [("a", svc("a", "ClusterIP", node_ports=(30501,)))])


def test_local_to_cluster_releases_the_health_check_port(store: Store) -> None:
    (a,) = apply(store, svc("a", "LoadBalancer", externalTrafficPolicy="Local"))
    spec = {**a["spec"], "externalTrafficPolicy": "Cluster"}
    (c,) = apply(store, {**a, "spec": spec})
    assert "healthCheckNodePort" not in c["spec"]
    assert node_ports(c) == node_ports(a)
