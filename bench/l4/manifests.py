"""The benchmark's workload as Kubernetes objects and the nginx config (pure).

- ``backend``: nginx on node2 answering ``200 ok`` on 8080. It declares no containerPorts on
  purpose: the lab kubelet's readiness check reads ``/proc/PID/net/tcp`` for declared ports,
  and with the tens of thousands of TIME_WAIT sockets a new-connection run leaves behind,
  that scan costs a good part of a core (measured: ~40% of one core at 14k sockets).
- ``client``: an idle pod on node1; wrk runs in its network namespace via ``tulle lab exec``.
- ``target``: the measured Service (selector on the backend, created last).
- fillers: selector-less Services, each with a hand-written EndpointSlice pointing at the
  backend, so the datapath holds one real service entry (and backend) per filler.

When the run measures NodePort (``--paths`` with nodeport), the target and every filler are
``type: NodePort`` (externalTrafficPolicy Cluster) with a fixed node port, so both labs use the
same ports and the target's is known before it exists. 10,000 of them do not fit the API
server's default range (30000-32767, 2,768 ports), so the Tulle lab is brought up with
``--service-node-port-range 20000-32767`` (kube-apiserver allows any range): 12,768 ports,
all below Linux's ephemeral ports (32768-60999), so a node's own outgoing connections never
get a source port that a NodePort Service holds (the reason kube-apiserver's default sits
below them too).
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

from bench.l4 import kubeproxy

NAMESPACE = "bench"
BACKEND_PORT = 8080
SERVICE_PORT = 80
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
HOSTNAME_LABEL = "kubernetes.io/hostname"
SERVICE_CIDR = ipaddress.IPv4Network("10.96.0.0/16")
CLUSTER_CIDR = "10.244.0.0/16"
# Fixed ClusterIPs, so both labs use the same addresses and the probe knows the target's
# address before the Service exists. Fillers start at 10.96.1.1, clear of .1 and .10.
TARGET_VIP = "10.96.200.10"
MAX_FILLERS = 40_000
NODE_PORT_RANGE = range(20_000, 32_768)  # the Tulle lab's --service-node-port-range
TARGET_NODE_PORT = NODE_PORT_RANGE.start  # filler i has TARGET_NODE_PORT + i
MAX_NODE_PORT_SERVICES = len(NODE_PORT_RANGE)

Obj = dict[str, Any]


def nginx_conf(workdir: Path) -> str:
    """One worker, no access log, a fixed 200: the backend should never be what limits."""
    return f"""worker_processes 1;
user root;
pid {workdir}/nginx.pid;
error_log {workdir}/nginx-error.log warn;
events {{ worker_connections 8192; multi_accept on; }}
http {{
  access_log off;
  keepalive_requests 100000000;
  keepalive_timeout 120s;
  client_body_temp_path {workdir}/client_body;
  proxy_temp_path {workdir}/proxy;
  fastcgi_temp_path {workdir}/fastcgi;
  uwsgi_temp_path {workdir}/uwsgi;
  scgi_temp_path {workdir}/scgi;
  server {{
    listen {BACKEND_PORT} backlog=8192;
    location / {{ return 200 "ok\\n"; }}
  }}
}}
"""


def namespace() -> Obj:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}


def _pod(name: str, node: str, command: list[str]) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": {"app": name}},
        "spec": {
            "nodeSelector": {HOSTNAME_LABEL: node},
            "containers": [{"name": name, "image": "bench", "command": command}],
        },
    }


def backend_pod(conf: Path, node: str = "node2") -> Obj:
    error_log = str(conf.parent / "nginx-error.log")
    return _pod("backend", node, ["nginx", "-e", error_log, "-c", str(conf), "-g", "daemon off;"])


def client_pod(node: str = "node1") -> Obj:
    return _pod("client", node, ["sleep", "infinity"])


def node_port_range_flag() -> str:
    """The value of `tulle lab up --service-node-port-range` for the Tulle lab."""
    return f"{NODE_PORT_RANGE.start}-{NODE_PORT_RANGE.stop - 1}"


def _port(node_port: int | None = None) -> Obj:
    port: Obj = {"name": "http", "port": SERVICE_PORT, "targetPort": BACKEND_PORT,
                 "protocol": "TCP"}
    if node_port is not None:
        port["nodePort"] = node_port
    return port


def _spec(cluster_ip: str, node_port: int | None) -> Obj:
    spec: Obj = {"clusterIP": cluster_ip, "ports": [_port(node_port)]}
    if node_port is not None:
        spec.update(type="NodePort", externalTrafficPolicy="Cluster")
    return spec


def target_service(node_port: bool = False) -> Obj:
    spec = _spec(TARGET_VIP, TARGET_NODE_PORT if node_port else None)
    spec["selector"] = {"app": "backend"}
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "target", "namespace": NAMESPACE},
        "spec": spec,
    }


def filler_name(index: int) -> str:
    return f"filler-{index:05d}"


def filler_vip(index: int) -> str:
    if not 1 <= index <= MAX_FILLERS:
        raise ValueError(f"filler index {index} outside 1..{MAX_FILLERS}")
    return str(SERVICE_CIDR.network_address + 256 + index)


def filler_node_port(index: int) -> int:
    port = TARGET_NODE_PORT + index
    if index < 1 or port not in NODE_PORT_RANGE:
        raise ValueError(f"filler index {index} outside 1..{MAX_NODE_PORT_SERVICES - 1}: the "
                         f"node port range {node_port_range_flag()} holds "
                         f"{MAX_NODE_PORT_SERVICES:,} NodePort Services with the target")
    return port


def filler_objects(index: int, backend_ip: str, node_port: bool = False) -> list[Obj]:
    """A selector-less Service (NodePort if asked) and its EndpointSlice (one ready
    endpoint: the backend)."""
    name = filler_name(index)
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": _spec(filler_vip(index), filler_node_port(index) if node_port else None),
    }
    endpoint_slice = {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"{name}-ep",
            "namespace": NAMESPACE,
            "labels": {SERVICE_NAME_LABEL: name},
        },
        "addressType": "IPv4",
        "endpoints": [
            {
                "addresses": [backend_ip],
                "conditions": {"ready": True, "serving": True, "terminating": False},
            }
        ],
        "ports": [{"name": "http", "port": BACKEND_PORT, "protocol": "TCP"}],
    }
    return [service, endpoint_slice]


def iptables_service_ports(backend_ip: str, count: int,
                           node_port: bool = False) -> list[kubeproxy.ServicePort]:
    """The same ``count`` Services as kube-proxy sees them in the comparison lab: the fillers,
    then the target, with the Tulle lab's ClusterIPs and node ports."""
    endpoint = (kubeproxy.Endpoint(backend_ip, BACKEND_PORT),)
    services = [
        kubeproxy.ServicePort(NAMESPACE, filler_name(i), "http", filler_vip(i), SERVICE_PORT,
                              endpoint, node_port=filler_node_port(i) if node_port else None)
        for i in range(1, count)
    ]
    services.append(kubeproxy.ServicePort(NAMESPACE, "target", "http", TARGET_VIP,
                                          SERVICE_PORT, endpoint,
                                          node_port=TARGET_NODE_PORT if node_port else None))
    return services


def as_list(objects: list[Obj]) -> Obj:
    """A `kind: List`, which `tulle apply` expands (JSON parses much faster than YAML)."""
    return {"apiVersion": "v1", "kind": "List", "items": objects}
