"""A hostNetwork pod's resolver, as a kubelet picks it from ``dnsPolicy``: the cluster DNS
only for ClusterFirstWithHostNet (bound at /etc/resolv.conf in a mount namespace of its
own, the node's /etc being the machine's), the node's own otherwise; a pod network
namespace always gets the cluster DNS."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agent.model.convert import from_dict
from agent.model.core import Pod
from agent.model.core_container import DnsPolicy
from lab import volumesetup
from lab.kubelet import Kubelet
from lab.podvolumes import RESOLV_CONF
from lab.state import LabPaths
from lab.topology import DNS_ADDRESS, plan_lab
from tests.unit.lab.kubelet_harness import Sink
from tests.unit.model.helpers import error_of


def pod(**spec: Any) -> Pod:
    obj = from_dict({"apiVersion": "v1", "kind": "Pod",
                     "metadata": {"name": "p", "namespace": "shop", "uid": "u1"},
                     "spec": {"nodeName": "node1", "automountServiceAccountToken": False,
                              "containers": [{"name": "c", "command": ["sleep", "60"]}],
                              **spec}})
    assert isinstance(obj, Pod)
    return obj


HOST = {"hostNetwork": True}
WITH_HOST_NET = {"hostNetwork": True, "dnsPolicy": "ClusterFirstWithHostNet"}


def test_the_policy_is_read_and_an_unknown_one_refused() -> None:
    assert pod().spec.dns_policy is None
    assert pod(**WITH_HOST_NET).spec.dns_policy is DnsPolicy.CLUSTER_FIRST_WITH_HOST_NET
    doc = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "shop"},
           "spec": {"dnsPolicy": "ClusterLast", "containers": [{"name": "c"}]}}
    assert "dnsPolicy" in error_of(doc)


@pytest.mark.parametrize(("spec", "cluster", "mount_ns"), [
    ({}, True, False),  # a pod netns: its resolv.conf through `ip netns exec`
    ({"dnsPolicy": "ClusterFirstWithHostNet"}, True, False),
    (HOST, False, False),  # ClusterFirst on the host network: the node's resolver
    ({**HOST, "dnsPolicy": "Default"}, False, False),
    (WITH_HOST_NET, True, True),
])
def test_who_gets_the_cluster_dns_and_a_mount_namespace_for_it(
    spec: dict[str, Any], cluster: bool, mount_ns: bool,
) -> None:
    p = pod(**spec)
    assert volumesetup.cluster_resolver(p) is cluster
    assert volumesetup.uses_volumes(p) is mount_ns


def created(tmp_path: Path, p: Pod) -> Any:
    paths = LabPaths("t", tmp_path / "lab")
    paths.make_dirs()
    paths.lab_file.write_text('{"name": "t", "nodes": 1, "datapath": false}')
    sink = Sink()
    kubelet = Kubelet(plan_lab("t", 1), paths, sink, events=sink,  # type: ignore[arg-type]
                      lookup=lambda kind, ns, name: None)
    return kubelet._create(p)


def test_a_cluster_first_with_host_net_container_gets_the_cluster_resolv_conf(
    tmp_path: Path,
) -> None:
    rt = created(tmp_path, pod(**WITH_HOST_NET))
    assert rt.host_network and rt.netns == "tulle-t-node1"
    binds = {b.target: b for b in rt.containers[0].binds or ()}
    resolv = binds[RESOLV_CONF]
    assert resolv.read_only
    text = Path(resolv.source).read_text()
    assert f"nameserver {DNS_ADDRESS}" in text and "search shop.svc.cluster.local" in text


@pytest.mark.parametrize("spec", [HOST, {**HOST, "volumes": [{"name": "v", "emptyDir": {}}],
                                         "containers": [{"name": "c", "command": ["sleep", "60"],
                                                         "volumeMounts": [{"name": "v",
                                                                           "mountPath": "/run/v"}]}]}])
def test_other_host_network_pods_keep_the_node_resolver(tmp_path: Path,
                                                        spec: dict[str, Any]) -> None:
    rt = created(tmp_path, pod(**spec))
    assert RESOLV_CONF not in {b.target for b in rt.containers[0].binds or ()}
