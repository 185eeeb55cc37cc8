"""GATEWAY-TCP, GATEWAY-UDP and GATEWAY-TLS: Layer 4 routes on Gateway listeners. Their kinds
are being added (issue 16 items 2 and 3); until the lab serves a kind, its cases are skipped
and the profile reports that, never a pass. GATEWAY-TLS has no case yet (TLS passthrough
needs a backend with its own certificate; to be written with TLSRoute)."""

from __future__ import annotations

import json
from typing import Any

from conformance.case import Case, CaseFailed
from conformance.cases.common import (
    GATEWAY_API,
    Expect,
    backend,
    echo,
    expect_all,
    gateway_address,
    namespace,
    route,
    service,
)
from conformance.lab import POD_PYTHON, Lab, eventually

NS = "gateway-conformance-l4"
GATEWAY = "l4-gateway"

UDP_SERVER = r"""
import os, socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 5353))
while True:
    data, peer = s.recvfrom(2048)
    s.sendto(os.environ["POD_NAME"].encode() + b":" + data, peer)
"""
UDP_ASK = r"""
import json, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(2)
try:
    s.sendto(b"ping", (sys.argv[1], int(sys.argv[2])))
    print(json.dumps({"reply": s.recv(2048).decode()}))
except OSError as e:
    print(json.dumps({"error": repr(e)}))
"""


def _udp_server() -> dict[str, Any]:
    container = {"name": "udp", "image": "tulle/echo", "command": [POD_PYTHON, "-c", UDP_SERVER],
                 "ports": [{"name": "dns", "containerPort": 5353, "protocol": "UDP"}]}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "udp-backend", "namespace": NS},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "udp-backend"}},
                     "template": {"metadata": {"labels": {"app": "udp-backend"}},
                                  "spec": {"containers": [container]}}}}


BASE: tuple[dict[str, Any], ...] = (
    namespace(NS), echo(NS, "tcp-backend"), echo(NS, "client"), _udp_server(),
    service(NS, "tcp-backend"),
    {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "udp-backend", "namespace": NS},
     "spec": {"selector": {"app": "udp-backend"},
              "ports": [{"name": "dns", "port": 5353, "targetPort": 5353, "protocol": "UDP"}]}},
    {"apiVersion": GATEWAY_API, "kind": "Gateway", "metadata": {"name": GATEWAY, "namespace": NS},
     "spec": {"gatewayClassName": "tulle", "listeners": [
         {"name": "tcp", "port": 9000, "protocol": "TCP"},
         {"name": "udp", "port": 5300, "protocol": "UDP"}]}},
)


def _tcp_check(lab: Lab) -> None:
    """Bytes sent to the TCP listener reach the backend (the echo answers an HTTP request
    carried as plain TCP) (upstream TCPRouteSimple)."""
    base = f"http://{gateway_address(lab, NS, GATEWAY)}:9000"
    expect_all(lab, NS, "client", base, [Expect(path="/tcp", backend="tcp-backend")])


def _udp_check(lab: Lab) -> None:
    """A datagram to the UDP listener is answered by the backend (upstream UDPRouteSimple)."""
    pod = lab.pod(NS, "client")
    address = gateway_address(lab, NS, GATEWAY)

    def once() -> None:
        got = lab.run_py(NS, pod, POD_PYTHON, UDP_ASK, address, "5300")
        if not str(got.get("reply", "")).startswith("udp-backend-"):
            raise CaseFailed(f"UDP answer {json.dumps(got)}, want one from udp-backend")

    eventually(once, timeout=30)


CASES = [
    Case("TCPRouteSimple", "GATEWAY-TCP", ("Gateway", "TCPRoute"),
         (*BASE, route("TCPRoute", NS, "tcp", {"name": GATEWAY, "sectionName": "tcp"},
                       [{"backendRefs": [backend("tcp-backend")]}])),
         _tcp_check, kinds=("TCPRoute",)),
    Case("UDPRouteSimple", "GATEWAY-UDP", ("Gateway", "UDPRoute"),
         (*BASE, route("UDPRoute", NS, "udp", {"name": GATEWAY, "sectionName": "udp"},
                       [{"backendRefs": [backend("udp-backend", 5353)]}])),
         _udp_check, kinds=("UDPRoute",)),
]
