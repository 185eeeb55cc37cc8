"""`tulle` node setup (agent/cli/nodesetup.py): the node's waypoint address by the cluster's
rule (the last host of Node.spec.podCIDR, as the datapath plans it), read as the agent's own
account (a list by name: its role has no get), written whole for the containers' shell."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.cli.nodesetup import SetupError, plan, read_node, run, setup
from agent.kube.source import connect
from tests.unit.kube.conftest import Lab, account_kubeconfig, serve_lab


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    yield from serve_lab(tmp_path, gateway_api=False)


def node(name: str = "node1", pod_cidr: str | None = "10.244.1.0/24") -> dict[str, Any]:
    spec = {"podCIDR": pod_cidr} if pod_cidr else {}
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}, "spec": spec}


@pytest.mark.parametrize(
    ("pod_cidr", "expected"),
    [("10.244.1.0/24", "10.244.1.254"), ("10.42.0.0/16", "10.42.255.254"),
     ("10.0.0.0/30", "10.0.0.2"), (None, None), ("10.0.0.0/31", None), ("fd00::/64", None)],
)
def test_the_address_is_the_last_host_of_the_pod_cidr(pod_cidr: str | None,
                                                       expected: str | None) -> None:
    found = plan(node(pod_cidr=pod_cidr))
    assert (None if found is None else str(found)) == expected


def test_a_malformed_node_names_itself() -> None:
    with pytest.raises(SetupError, match="Node 'node1'"):
        plan({**node(), "spec": {"podCIDR": 7}})


def test_setup_adds_the_address_and_writes_it_whole(tmp_path: Path) -> None:
    out = tmp_path / "waypoint-address"
    added: list[ipaddress.IPv4Address] = []
    assert str(setup(node(), out, lambda a: added.append(a) or True)) == "10.244.1.254"
    assert added == [ipaddress.IPv4Address("10.244.1.254")]
    assert out.read_text() == "10.244.1.254\n"
    assert setup(node(pod_cidr=None), out, lambda a: pytest.fail("no address to add")) is None
    assert out.read_text() == ""  # the agent then runs without --waypoint
    assert sorted(p.name for p in tmp_path.iterdir()) == ["waypoint-address"]


def test_the_agents_account_reads_its_node_by_a_list(lab: Lab) -> None:
    lab.store.apply(node("node1"))
    lab.store.apply(node("node2", "10.244.2.0/24"))
    client = connect(account_kubeconfig(lab, "tulle-agent"))
    assert read_node(client, "node2")["spec"]["podCIDR"] == "10.244.2.0/24"
    with pytest.raises(SetupError, match="no Node 'node9'"):
        read_node(client, "node9")


def test_run_reports_what_failed(lab: Lab, tmp_path: Path,
                                 caplog: pytest.LogCaptureFixture) -> None:
    kubeconfig = str(account_kubeconfig(lab, "tulle-agent"))
    assert run("node9", kubeconfig, tmp_path / "out") == 1
    assert "no Node 'node9'" in caplog.text
    assert run("node1", str(tmp_path / "missing.kubeconfig"), tmp_path / "out") == 1
    assert "missing.kubeconfig" in caplog.text
    assert not (tmp_path / "out").exists()
