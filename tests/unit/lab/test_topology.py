import ipaddress

import pytest

from lab import ipam
from lab.topology import SERVICE_CIDR, TopologyError, host_veth_name, plan_lab


def test_plan_assigns_disjoint_cidrs_and_fabric_addresses():
    plan = plan_lab("demo", 3)
    assert [n.name for n in plan.nodes] == ["node1", "node2", "node3"]
    cidrs = [n.pod_cidr for n in plan.nodes]
    assert len(set(cidrs)) == 3
    assert not any(a.overlaps(b) for i, a in enumerate(cidrs) for b in cidrs[i + 1 :])
    assert not any(c.overlaps(SERVICE_CIDR) for c in cidrs)
    assert [str(n.fabric_ip) for n in plan.nodes] == ["10.240.0.11", "10.240.0.12", "10.240.0.13"]
    assert all(n.gateway_ip == n.pod_cidr.network_address + 1 for n in plan.nodes)


def test_every_lab_namespace_carries_the_lab_prefix():
    plan = plan_lab("demo", 2)
    names = [plan.fabric_netns, *(n.netns for n in plan.nodes), plan.pod_netns("shop", "web-1")]
    assert all(name.startswith("tulle-demo-") for name in names)


def test_long_pod_names_are_hashed_to_a_bounded_netns_name():
    plan = plan_lab("demo", 1)
    long = plan.pod_netns("n" * 63, "p" * 253)
    assert long.startswith("tulle-demo-pod-") and len(long) < 100
    assert long == plan.pod_netns("n" * 63, "p" * 253)


@pytest.mark.parametrize(
    ("name", "nodes", "message"),
    [
        ("Bad", 2, "invalid lab name"),
        ("x" * 13, 2, "invalid lab name"),
        ("ok", 0, "--nodes"),
        ("ok", 201, "--nodes"),
    ],
)
def test_bad_lab_shapes_are_refused(name, nodes, message):
    with pytest.raises(TopologyError, match=message):
        plan_lab(name, nodes)


def test_host_veth_names_fit_ifnamsiz_and_differ_per_pod():
    a, b = host_veth_name("shop", "web-1"), host_veth_name("shop", "web-2")
    assert a != b and len(a) <= 15 and a.startswith("lxc")


def test_ipam_skips_gateway_and_used_addresses():
    cidr = ipaddress.IPv4Network("10.244.1.0/24")
    assert str(ipam.allocate(cidr, set())) == "10.244.1.2"
    used = {ipaddress.IPv4Address("10.244.1.2"), ipaddress.IPv4Address("10.244.1.3")}
    assert str(ipam.allocate(cidr, used)) == "10.244.1.4"


def test_ipam_reports_exhaustion():
    cidr = ipaddress.IPv4Network("10.244.1.0/30")  # hosts .1 (gateway) and .2
    with pytest.raises(ipam.PoolExhausted, match="no free address"):
        ipam.allocate(cidr, {ipaddress.IPv4Address("10.244.1.2")})


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (("a-b", "c"), ("a", "b-c")),  # `-` joins both names: must not read alike
        (("shop", "x" * 60 + "1"), ("shop", "x" * 60 + "2")),  # differ past the readable part
        (("n" * 63, "p" * 253), ("n" * 62, "p" * 254)),
    ],
)
def test_pod_netns_names_never_collide_across_namespaces(first, second):
    plan = plan_lab("demo", 1)
    a, b = plan.pod_netns(*first), plan.pod_netns(*second)
    assert a != b
    assert all(n.startswith("tulle-demo-pod-") and len(n) < 100 for n in (a, b))


def test_the_external_client_is_on_the_fabric_apart_from_nodes_and_the_api_server():
    from lab.topology import API_SERVER_IP, EXTERNAL_CLIENT_IP, FABRIC_CIDR

    plan = plan_lab("demo", 200)
    assert plan.external_netns == "tulle-demo-external"
    assert plan.external_netns.startswith(plan.prefix)  # lab down and leak checks find it
    assert EXTERNAL_CLIENT_IP in FABRIC_CIDR
    assert EXTERNAL_CLIENT_IP != API_SERVER_IP
    assert EXTERNAL_CLIENT_IP not in {n.fabric_ip for n in plan.nodes}
    assert not any(EXTERNAL_CLIENT_IP in n.pod_cidr for n in plan.nodes)
