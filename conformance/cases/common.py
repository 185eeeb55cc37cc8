"""What the cases share: the base objects of each profile (namespaces, echo backends, a
client pod, a Gateway), object builders, and one request-and-expect helper that sends a
batch of requests from a pod and compares each answer with what the spec says."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from conformance.case import CaseFailed
from conformance.lab import Lab, eventually

INFRA = "gateway-conformance-infra"
OTHER = "gateway-conformance-app-backend"
MESH = "gateway-conformance-mesh"
CONSUMER = "gateway-conformance-mesh-consumer"
GATEWAY = "same-namespace"
GATEWAY_API = "gateway.networking.k8s.io/v1"


def namespace(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def echo(ns: str, name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    """A Deployment of the lab's echo server (the upstream echo backend's behaviour)."""
    container = {"name": name, "image": "tulle/echo",
                 "ports": [{"name": "http", "containerPort": 8080}]}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name, **(labels or {})}},
                                  "spec": {"containers": [container]}}}}


def service(ns: str, name: str, selector: dict[str, str] | None = None,
            ports: Sequence[int] = (80,)) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns},
            "spec": {"selector": selector or {"app": name},
                     "ports": [{"name": f"p{p}", "port": p, "targetPort": "http"}
                               for p in ports]}}


def route(kind: str, ns: str, name: str, parent: dict[str, Any], rules: list[dict[str, Any]],
          hostnames: Sequence[str] = ()) -> dict[str, Any]:
    spec: dict[str, Any] = {"parentRefs": [parent], "rules": rules}
    if hostnames:
        spec["hostnames"] = list(hostnames)
    return {"apiVersion": GATEWAY_API, "kind": kind,
            "metadata": {"name": name, "namespace": ns}, "spec": spec}


def http_route(ns: str, name: str, parent: dict[str, Any], rules: list[dict[str, Any]],
               hostnames: Sequence[str] = ()) -> dict[str, Any]:
    return route("HTTPRoute", ns, name, parent, rules, hostnames)


def gateway_parent() -> dict[str, Any]:
    return {"name": GATEWAY, "namespace": INFRA, "sectionName": "http"}


def service_parent(name: str, port: int = 80) -> dict[str, Any]:
    return {"group": "", "kind": "Service", "name": name, "port": port}


def backend(name: str, port: int = 80, ns: str | None = None, **extra: Any) -> dict[str, Any]:
    ref: dict[str, Any] = {"name": name, "port": port, **extra}
    if ns:
        ref["namespace"] = ns
    return ref


def prefix(path: str) -> dict[str, Any]:
    return {"path": {"type": "PathPrefix", "value": path}}


def exact(path: str) -> dict[str, Any]:
    return {"path": {"type": "Exact", "value": path}}


GATEWAY_BASE: tuple[dict[str, Any], ...] = (
    namespace(INFRA), namespace(OTHER),
    echo(INFRA, "infra-backend-v1"), echo(INFRA, "infra-backend-v2"),
    echo(INFRA, "infra-backend-v3"), echo(INFRA, "client"), echo(OTHER, "app-backend-v1"),
    service(INFRA, "infra-backend-v1"), service(INFRA, "infra-backend-v2"),
    service(INFRA, "infra-backend-v3"), service(OTHER, "app-backend-v1"),
    {"apiVersion": GATEWAY_API, "kind": "Gateway",
     "metadata": {"name": GATEWAY, "namespace": INFRA},
     "spec": {"gatewayClassName": "tulle",
              "listeners": [{"name": "http", "port": 80, "protocol": "HTTP",
                             "allowedRoutes": {"namespaces": {"from": "Same"}}}]}},
)

MESH_BASE: tuple[dict[str, Any], ...] = (
    namespace(MESH), namespace(CONSUMER),
    echo(MESH, "echo-v1", {"svc": "echo"}), echo(MESH, "echo-v2", {"svc": "echo"}),
    echo(MESH, "client"), echo(CONSUMER, "client"),
    service(MESH, "echo", {"svc": "echo"}, ports=(80, 8080)),
    service(MESH, "echo-v1"), service(MESH, "echo-v2"),
)

_gateway_address: dict[tuple[str, str, str], str] = {}


def gateway_address(lab: Lab, ns: str = INFRA, name: str = GATEWAY) -> str:
    """A Gateway's address from its status (a pool address, once the controller gave it)."""
    key = (lab.name, ns, name)
    if key not in _gateway_address:
        def addressed() -> str:
            for gw in lab.get("gateways", ns):
                if gw["metadata"]["name"] == name:
                    for a in (gw.get("status") or {}).get("addresses") or []:
                        return str(a["value"])
            raise CaseFailed(f"Gateway {ns}/{name} has no address in its status")
        _gateway_address[key] = eventually(addressed, timeout=60)
    return _gateway_address[key]


def cluster_ip(lab: Lab, ns: str, name: str) -> str:
    for s in lab.get("services", ns):
        if s["metadata"]["name"] == name:
            return str(s["spec"]["clusterIP"])
    raise CaseFailed(f"no Service {ns}/{name}")


def deployment_of(pod: str) -> str:
    """A Deployment's pod is named <deployment>-<template hash>-<suffix>."""
    return pod.rsplit("-", 2)[0]


@dataclass(frozen=True)
class Expect:
    """One request and the answer the spec gives for it. ``backend``: the app label prefix
    of the pod that must answer; ``request_headers``: as the backend saw them (None: absent)."""

    path: str = "/"
    method: str = "GET"
    headers: dict[str, str] = field(default_factory=dict)
    host: str | None = None
    status: int = 200
    backend: str | None = None
    seen_path: str | None = None
    seen_host: str | None = None
    request_headers: dict[str, str | None] = field(default_factory=dict)
    response_headers: dict[str, str | None] = field(default_factory=dict)
    location: str | None = None

    def request(self, base: str) -> dict[str, Any]:
        return {"url": base + self.path, "method": self.method, "headers": self.headers,
                "host": self.host}

    def mismatch(self, got: dict[str, Any]) -> str | None:
        """What differs from the spec's answer, or None."""
        if "error" in got:
            return f"no answer: {got['error']}"
        if got["status"] != self.status:
            return f"status {got['status']}, want {self.status}"
        heads = got["headers"]
        for name, want in self.response_headers.items():
            value = ",".join(heads.get(name.lower(), [])) or None
            if value != want:
                return f"response header {name}: {value!r}, want {want!r}"
        if self.location is not None:
            loc = (heads.get("location") or [None])[0]
            if loc != self.location:
                return f"Location {loc!r}, want {self.location!r}"
        body = got["body"]
        if self.backend is None and self.seen_path is None and not self.request_headers:
            return None
        if not isinstance(body, dict):
            return f"not an echo answer: {str(body)[:120]!r}"
        if self.backend and deployment_of(str(body.get("pod", ""))) != self.backend:
            return f"answered by {body.get('pod')!r}, want a pod of {self.backend}"
        if self.seen_path is not None and body.get("path") != self.seen_path:
            return f"backend saw path {body.get('path')!r}, want {self.seen_path!r}"
        if self.seen_host is not None and body.get("host") != self.seen_host:
            return f"backend saw host {body.get('host')!r}, want {self.seen_host!r}"
        seen = {k.lower(): ",".join(v) for k, v in (body.get("headers") or {}).items()}
        for name, want in self.request_headers.items():
            if seen.get(name.lower()) != want:
                return f"backend saw {name}: {seen.get(name.lower())!r}, want {want!r}"
        return None


def expect_all(lab: Lab, ns: str, client: str, base: str, expects: Sequence[Expect],
               timeout: float = 30) -> None:
    """Send every request from ``ns``/app=``client`` to ``base`` (scheme://host[:port])
    until each answer is the expected one."""
    pod = lab.pod(ns, client)

    def once() -> None:
        answers = lab.http(ns, pod, [e.request(base) for e in expects])
        problems = [f"{e.method} {e.path}: {why}" for e, got in zip(expects, answers, strict=True)
                    if (why := e.mismatch(got))]
        if problems:
            raise CaseFailed("; ".join(problems))

    eventually(once, timeout=timeout)


def via_gateway(lab: Lab, hostname: str, expects: Sequence[Expect]) -> None:
    base = f"http://{gateway_address(lab)}"
    expect_all(lab, INFRA, "client", base,
               [e if e.host else replace(e, host=hostname) for e in expects])


def via_mesh(lab: Lab, expects: Sequence[Expect], service_host: str = f"echo.{MESH}",
             ns: str = MESH) -> None:
    expect_all(lab, ns, "client", f"http://{service_host}", expects)
