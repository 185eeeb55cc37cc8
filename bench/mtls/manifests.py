"""bench-mtls's workload as Kubernetes objects and nginx's config (pure).

- namespace ``mtls-server``: ``backend``, nginx on node2 (``/1k``: a fixed 1,024-byte body;
  ``/bulk``: a large file for the one-stream throughput), and two Services on it:
  ``plain`` (no route: the kernel's L4 path) and ``routed`` (an HTTPRoute on it: every
  request goes through node1's waypoint, the plaintext waypoint path);
- namespace ``mtls-client``: ``client``, an idle pod on node1 that the load runs from.

Two namespaces because enrolment is per namespace (label ``tulle.io/mtls: "true"``): the
``mtls`` mode labels both, and the ``plain`` Service's connections then ride the tunnel.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from identity.peerauth import ENROL_LABEL

SERVER_NS = "mtls-server"
CLIENT_NS = "mtls-client"
BACKEND_PORT = 8080
SERVICE_PORT = 80
PLAIN_VIP = "10.96.210.10"
ROUTED_VIP = "10.96.210.11"
HOSTNAME_LABEL = "kubernetes.io/hostname"
BODY_BYTES = 1024
BULK_PATH = "/bulk"
SMALL_PATH = "/1k"
XFF_PATH = "/xff"  # echoes X-Forwarded-For: set only when the waypoint carried the request

Obj = dict[str, Any]


def body() -> str:
    """The 1 KB answer of Istio's figures; printable, so nginx's `return` takes it as is."""
    line = "0123456789abcdef" * 4  # 64 bytes
    return (line * (BODY_BYTES // len(line)))[:BODY_BYTES]


def nginx_conf(workdir: Path) -> str:
    """One worker (the backend is the same in every mode), no access log, keep-alive forever;
    `/bulk` is served with sendfile from `workdir/www/bulk`."""
    return f"""worker_processes 1;
user root;
pid {workdir}/nginx.pid;
error_log {workdir}/nginx-error.log warn;
events {{ worker_connections 8192; multi_accept on; }}
http {{
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 100000000;
  keepalive_timeout 120s;
  client_body_temp_path {workdir}/client_body;
  proxy_temp_path {workdir}/proxy;
  fastcgi_temp_path {workdir}/fastcgi;
  uwsgi_temp_path {workdir}/uwsgi;
  scgi_temp_path {workdir}/scgi;
  server {{
    listen {BACKEND_PORT} backlog=8192;
    root {workdir}/www;
    default_type application/octet-stream;
    location = {SMALL_PATH} {{ return 200 "{body()}"; }}
    location = {BULK_PATH} {{ }}
    location = {XFF_PATH} {{ return 200 "xff=$http_x_forwarded_for\\n"; }}
    location / {{ return 200 "ok\\n"; }}
  }}
}}
"""


def namespace(name: str, enrolled: bool) -> Obj:
    labels = {ENROL_LABEL: "true"} if enrolled else {}
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}


def namespaces(enrolled: bool) -> list[Obj]:
    return [namespace(SERVER_NS, enrolled), namespace(CLIENT_NS, enrolled)]


def _pod(name: str, ns: str, node: str, command: list[str]) -> Obj:
    # No containerPorts on purpose (bench/l4/manifests.py: the kubelet's readiness scan of
    # /proc/PID/net/tcp would cost CPU during the runs).
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": {"app": name}},
        "spec": {
            "nodeSelector": {HOSTNAME_LABEL: node},
            "containers": [{"name": name, "image": "bench", "command": command}],
        },
    }


def backend_pod(conf: Path, node: str = "node2") -> Obj:
    error_log = str(conf.parent / "nginx-error.log")
    return _pod(
        "backend",
        SERVER_NS,
        node,
        ["/usr/sbin/nginx", "-e", error_log, "-c", str(conf), "-g", "daemon off;"],
    )


def client_pod(node: str = "node1") -> Obj:
    return _pod("client", CLIENT_NS, node, ["sleep", "infinity"])


def service(name: str, vip: str) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": SERVER_NS},
        "spec": {
            "clusterIP": vip,
            "selector": {"app": "backend"},
            "ports": [
                {
                    "name": "http",
                    "port": SERVICE_PORT,
                    "targetPort": BACKEND_PORT,
                    "protocol": "TCP",
                }
            ],
        },
    }


def route() -> Obj:
    """A GAMMA HTTPRoute on `routed` back to itself: node1's waypoint serves every request."""
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "routed", "namespace": SERVER_NS},
        "spec": {
            "parentRefs": [
                {"group": "", "kind": "Service", "name": "routed", "port": SERVICE_PORT}
            ],
            "rules": [{"backendRefs": [{"name": "routed", "port": SERVICE_PORT}]}],
        },
    }


def services() -> list[Obj]:
    return [service("plain", PLAIN_VIP), service("routed", ROUTED_VIP), route()]


def url(vip: str, path: str = SMALL_PATH) -> str:
    return f"http://{vip}:{SERVICE_PORT}{path}"
