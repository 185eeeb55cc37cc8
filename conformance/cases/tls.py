"""GATEWAY-TLS (TLSRoute on TLS listeners) and GatewayHTTPSListenerDetectMisdirectedRequests,
after upstream v1.6.1's tlsroute-*.go and httproute-https-listener-detect-misdirected-
requests.go (their tables and expectations; the objects are Tulle's own).

One Gateway carries every listener (the lab's Gateway addresses come from one pool,
`lab.topology.LB_POOL_CIDR`, and tests/unit/conformance/test_address_budget.py keeps the
suite's Gateways within it): upstream's four HTTPS listeners on 443,
one certificate for all, asked over HTTP/2 with one connection per SNI name carrying every
:authority (the connection-reuse case); and the TLS listeners, each case on its own port:
the four hostname intersections of TLSRouteHostnameIntersection (exact, wildcard, less
specific wildcard, no hostname), a listener whose route names a backend in another
namespace without a matching ReferenceGrant, a Terminate listener, and a port shared by a
Terminate and a Passthrough listener (Mixed). The passthrough backends answer with their
pod name under their own self-signed certificate (CN: the pod), so the client sees it was
passed through; the terminated connections must verify against the cases' CA for the SNI
name and reach a plain HTTP echo."""

from __future__ import annotations

import json
from typing import Any

from conformance.case import Case, CaseFailed
from conformance.cases.common import (
    GATEWAY_API,
    backend,
    deployment_of,
    echo,
    gateway_address,
    namespace,
    prefix,
    route,
    service,
)
from conformance.cases.streams import TLS_SERVER
from conformance.cases.tls_probes import H2_PROBE, TLS_PROBE, pki
from conformance.lab import GRPC_PYTHON, Lab, eventually

NS = "gateway-conformance-tls"
OTHER = "gateway-conformance-tls-other"
TLS_GW = "tls-listeners"
CORE = ("Gateway", "TLSRoute")
TERMINATE = "TLSRouteModeTerminate"
MIXED = "TLSRouteModeMixed"
MISDIRECTED = "GatewayHTTPSListenerDetectMisdirectedRequests"
NAMES = ("tls.example.com", "example.org", "second-example.org", "*.wildcard.org",
         "unknown-example.org")
MIS_PATH = "/detect-misdirected-requests"
# listener name -> (port, hostname); Passthrough unless named in _TERMINATED
LISTENERS: dict[str, tuple[int, str | None]] = {
    "exact": (10443, "abc.example.com"), "wild": (12443, "*.example.com"),
    "com": (11443, "*.com"), "any": (9443, None), "grant": (7443, "*.example.com"),
    "terminate": (8443, "tls.example.com"),
    "mixed-terminate": (8883, "tls.example.com"), "mixed-passthrough": (8883, "abc.example.com"),
}
_TERMINATED = ("terminate", "mixed-terminate")
# the h2 table: (SNI, :authority, status, backend)
MISDIRECTED_TABLE = (
    ("example.org", "example.org", 200, "backend-v1"),
    ("example.org", "second-example.org", 421, None),
    ("example.org", "unknown-example.org", 404, None),
    ("second-example.org", "second-example.org", 200, "backend-v2"),
    ("second-example.org", "example.org", 421, None),
    ("second-example.org", "unknown-example.org", 421, None),
    ("third-example.wildcard.org", "third-example.wildcard.org", 200, "backend-v3"),
    ("third-example.wildcard.org", "fith-example.wildcard.org", 200, "backend-v3"),
    ("third-example.wildcard.org", "fourth-example.wildcard.org", 421, None),
    ("third-example.wildcard.org", "second-example.org", 421, None),
    ("third-example.wildcard.org", "unknown-example.org", 421, None),
    ("fourth-example.wildcard.org", "fourth-example.wildcard.org", 200, "backend-v1"),
    ("fourth-example.wildcard.org", "fith-example.wildcard.org", 421, None),
    ("unknown-example.org", "example.org", 200, "backend-v1"),
    ("unknown-example.org", "unknown-example.org", 404, None),
)


def _tls_server(name: str) -> dict[str, Any]:
    container = {"name": "tls", "image": "tulle/echo", "command": [GRPC_PYTHON, "-c", TLS_SERVER],
                 "ports": [{"name": "tls", "containerPort": 8443}]}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": NS},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [container]}}}}


def _tls_service(ns: str, name: str, selector: bool = True) -> dict[str, Any]:
    spec: dict[str, Any] = {"ports": [{"name": "tls", "port": 443, "targetPort": 8443}]}
    if selector:
        spec["selector"] = {"app": name}
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns},
            "spec": spec}


def _listener(name: str) -> dict[str, Any]:
    port, hostname = LISTENERS[name]
    tls: dict[str, Any] = {"mode": "Passthrough"}
    if name in _TERMINATED:
        tls = {"mode": "Terminate", "certificateRefs": [{"group": "", "kind": "Secret",
                                                         "name": "gateway-cert"}]}
    out: dict[str, Any] = {"name": name, "port": port, "protocol": "TLS", "tls": tls,
                           "allowedRoutes": {"namespaces": {"from": "Same"},
                                             "kinds": [{"kind": "TLSRoute"}]}}
    if hostname:
        out["hostname"] = hostname
    return out


def _https(name: str, hostname: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "port": 443, "protocol": "HTTPS",
                           "allowedRoutes": {"namespaces": {"from": "Same"}},
                           "tls": {"certificateRefs": [{"group": "", "kind": "Secret",
                                                        "name": "gateway-cert"}]}}
    if hostname:
        out["hostname"] = hostname
    return out


def tls_route(name: str, sections: tuple[str, ...], hostname: str, to: str,
              ns: str | None = None, port: int = 443, **ref: Any) -> dict[str, Any]:
    """A TLSRoute in NS for ``hostname`` on the listeners ``sections`` of the Gateway."""
    obj = route("TLSRoute", NS, name, {"name": TLS_GW, "sectionName": sections[0]},
                [{"backendRefs": [backend(to, port, ns, **ref)]}], hostnames=[hostname])
    obj["spec"]["parentRefs"] = [{"name": TLS_GW, "sectionName": s} for s in sections]
    return obj


def _grant(name: str, from_: dict[str, str], to: dict[str, str]) -> dict[str, Any]:
    """A ReferenceGrant in OTHER that does not cover the route (each is wrong once)."""
    base_from = {"group": "gateway.networking.k8s.io", "kind": "TLSRoute", "namespace": NS}
    base_to = {"group": "", "kind": "Service", "name": "tls-backend"}
    return {"apiVersion": GATEWAY_API, "kind": "ReferenceGrant",
            "metadata": {"name": name, "namespace": OTHER},
            "spec": {"from": [{**base_from, **from_}], "to": [{**base_to, **to}]}}


def _http_route(name: str, section: str, to: str, hostnames: list[str]) -> dict[str, Any]:
    obj = route("HTTPRoute", NS, name, {"name": TLS_GW, "sectionName": section},
                [{"matches": [prefix(MIS_PATH)], "backendRefs": [backend(to)]}], hostnames)
    return obj


def _gateway() -> dict[str, Any]:
    """One Gateway for every case here: upstream's four HTTPS listeners on 443 (one
    certificate for all), the TLS listeners on their own ports, and an HTTP listener (that
    TLSRoutes must not attach to)."""
    https = [_https("https", None), _https("https-with-hostname", "second-example.org"),
             _https("https-with-wildcard-hostname", "*.wildcard.org"),
             _https("https-with-hostname-matching-wildcard", "fourth-example.wildcard.org")]
    return {"apiVersion": GATEWAY_API, "kind": "Gateway",
            "metadata": {"name": TLS_GW, "namespace": NS},
            "spec": {"gatewayClassName": "tulle",
                     "listeners": [*https, *(_listener(n) for n in LISTENERS),
                                   {"name": "http", "port": 8081, "protocol": "HTTP",
                                    "allowedRoutes": {"namespaces": {"from": "Same"}}}]}}


def _base() -> tuple[dict[str, Any], ...]:
    return (
        namespace(NS), echo(NS, "client"), _gateway(),
        *(echo(NS, f"backend-v{i}") for i in (1, 2, 3)),
        *(service(NS, f"backend-v{i}") for i in (1, 2, 3)),
        pki(NAMES).secret(NS, "gateway-cert"),
    )


def _tls_manifests() -> tuple[dict[str, Any], ...]:
    return (
        *_base(), namespace(OTHER),
        _tls_server("tls-backend"), _tls_server("tls-backend-2"),
        _tls_service(NS, "tls-backend"), _tls_service(NS, "tls-backend-2"),
        _tls_service(OTHER, "tls-backend", selector=False),
        # TLSRouteHostnameIntersection: x-1 (exact), x-2 (wild), x-3 (com), x-4 (any)
        tls_route("abc", ("wild", "com", "any"), "abc.example.com", "tls-backend"),
        tls_route("star-com", ("wild", "any"), "*.com", "tls-backend-2"),
        tls_route("star-example", ("exact",), "*.example.com", "tls-backend"),
        tls_route("star-example-2", ("com",), "*.example.com", "tls-backend-2"),
        # TLSRouteInvalidReferenceGrant
        tls_route("grant", ("grant",), "abc.example.com", "tls-backend", ns=OTHER),
        _grant("wrong-from-group", {"group": "not-the-group-youre-looking-for"}, {}),
        _grant("wrong-from-kind", {"kind": "Gateway"}, {}),
        _grant("wrong-from-namespace", {"namespace": "not-the-namespace-youre-looking-for"}, {}),
        _grant("wrong-to-group", {}, {"group": "not-the-group-youre-looking-for"}),
        _grant("wrong-to-kind", {}, {"kind": "Secret"}),
        _grant("wrong-to-name", {}, {"name": "not-the-service-youre-looking-for"}),
        # Terminate and Mixed: the terminated streams go to a plain HTTP echo
        tls_route("terminate", ("terminate",), "tls.example.com", "backend-v1", port=80),
        tls_route("mixed-terminate", ("mixed-terminate",), "tls.example.com", "backend-v1",
                   port=80),
        tls_route("mixed-passthrough", ("mixed-passthrough",), "abc.example.com",
                   "tls-backend"),
    )


def _misdirected_manifests() -> tuple[dict[str, Any], ...]:
    return (
        *_base(),
        _http_route("misdirected-1", "https", "backend-v1", ["example.org"]),
        _http_route("misdirected-2", "https-with-hostname", "backend-v2", []),
        _http_route("misdirected-3", "https-with-wildcard-hostname", "backend-v3", []),
        _http_route("misdirected-4", "https-with-hostname-matching-wildcard", "backend-v1", []),
    )


# --- checks ----------------------------------------------------------------------------


def expect_connections(lab: Lab, wants: list[tuple[str, str, str | None]]) -> None:
    """(listener, SNI, backend) on the TLS Gateway: the Deployment that must answer, or
    None for a connection that must be refused. Terminate listeners are asked over HTTP
    with the cases' CA; passthrough ones must show the backend's own certificate."""
    address = gateway_address(lab, NS, TLS_GW)
    probes = [{"address": address, "port": LISTENERS[listener][0], "sni": sni,
               **({"ca": pki(NAMES).ca, "http": sni} if listener in _TERMINATED else {})}
              for listener, sni, _ in wants]

    def once() -> None:
        got = lab.run_py(NS, lab.pod(NS, "client"), GRPC_PYTHON, TLS_PROBE, json.dumps(probes))
        problems = []
        for (listener, sni, want), answer in zip(wants, got, strict=True):
            where = f"{listener} ({LISTENERS[listener][0]}) SNI {sni}"
            if want is None:
                if "error" not in answer:
                    problems.append(f"{where}: served {json.dumps(answer)}, want refused")
            elif "error" in answer:
                problems.append(f"{where}: {answer['error']}, want {want}")
            elif listener in _TERMINATED:
                if answer.get("status") != 200 or deployment_of(str(answer.get("pod"))) != want:
                    problems.append(f"{where}: {json.dumps(answer)}, want 200 from {want}")
            elif deployment_of(str(answer["cn"])) != want or answer.get("reply") != answer["cn"]:
                problems.append(f"{where}: {json.dumps(answer)}, want {want}'s own certificate")
        if problems:
            raise CaseFailed("; ".join(problems))

    eventually(once, timeout=45)


def route_conditions(lab: Lab, name: str) -> dict[str, tuple[str, str]]:
    for r in lab.get("tlsroutes", NS):
        if r["metadata"]["name"] == name:
            parents = (r.get("status") or {}).get("parents") or [{}]
            return {c["type"]: (c["status"], c["reason"]) for c in parents[0].get("conditions")
                    or []}
    raise CaseFailed(f"TLSRoute {NS}/{name} not found")


def expect_route(lab: Lab, name: str, want: dict[str, tuple[str, str | None]]) -> None:
    def once() -> None:
        got = route_conditions(lab, name)
        for type_, (status, reason) in want.items():
            seen = got.get(type_)
            if seen is None or seen[0] != status or (reason and seen[1] != reason):
                raise CaseFailed(f"TLSRoute {name} {type_}: {seen}, want {status} {reason or ''}")

    eventually(once, timeout=30)


_RESOLVED: dict[str, tuple[str, str | None]] = {"Accepted": ("True", None),
                                               "ResolvedRefs": ("True", None)}


def expect_tls_listeners(lab: Lab, names: tuple[str, ...], attached: int | None) -> None:
    """The TLS Gateway's listeners ``names`` are Accepted with TLSRoute as their only kind
    (and ``attached`` routes, unless None)."""
    def once() -> None:
        gateways = {g["metadata"]["name"]: g for g in lab.get("gateways", NS)}
        status = {ls["name"]: ls for ls in (gateways.get(TLS_GW, {}).get("status") or {})
                  .get("listeners") or []}
        for name in names:
            ls = status.get(name) or {}
            accepted = [c for c in ls.get("conditions") or [] if c["type"] == "Accepted"]
            kinds = [k.get("kind") for k in ls.get("supportedKinds") or []]
            if (not accepted or accepted[0]["status"] != "True" or kinds != ["TLSRoute"]
                    or (attached is not None and ls.get("attachedRoutes") != attached)):
                raise CaseFailed(f"listener {name}: {json.dumps(ls)}, want Accepted, kinds "
                                 f"[TLSRoute], attachedRoutes {attached}")

    eventually(once, timeout=30)


def _intersection(lab: Lab) -> None:
    """Routes attach where their hostnames intersect the listener's and serve only the
    intersection: an exact listener with a wildcard route, a wildcard listener with exact
    and less specific wildcard routes, "*.com" with more specific ones, and a listener
    without hostname; a name outside every intersection is refused."""
    for name in ("abc", "star-com", "star-example", "star-example-2"):
        expect_route(lab, name, _RESOLVED)
    expect_connections(lab, [
        ("exact", "abc.example.com", "tls-backend"), ("exact", "non.matching.com", None),
        ("wild", "abc.example.com", "tls-backend"), ("wild", "other.example.com", "tls-backend-2"),
        ("wild", "non.matching.com", None),
        ("com", "abc.example.com", "tls-backend"), ("com", "other.example.com", "tls-backend-2"),
        ("com", "non.matching.com", None),
        ("any", "abc.example.com", "tls-backend"), ("any", "other.example.com", "tls-backend-2"),
        ("any", "non.matching.org", None),
    ])


def _invalid_grant(lab: Lab) -> None:
    """A backend in another namespace that no ReferenceGrant covers (six near misses):
    Accepted, ResolvedRefs False RefNotPermitted, and no connection is passed on."""
    expect_route(lab, "grant", {"Accepted": ("True", None),
                                 "ResolvedRefs": ("False", "RefNotPermitted")})
    expect_connections(lab, [("grant", "abc.example.com", None)])


def _terminate(lab: Lab) -> None:
    """The Gateway ends TLS with its certificate (verified for the SNI name against the
    cases' CA) and the route carries plain bytes to an HTTP echo; an SNI no listener on
    the port has is refused."""
    expect_route(lab, "terminate", _RESOLVED)
    expect_connections(lab, [("terminate", "tls.example.com", "backend-v1"),
                  ("terminate", "abc.example.com", None)])


def _mixed(lab: Lab) -> None:
    """A Terminate and a Passthrough listener on one port, both Accepted with one route
    each and TLSRoute as their kind; the SNI picks the mode."""
    expect_tls_listeners(lab, ("mixed-terminate", "mixed-passthrough"), attached=1)
    expect_connections(lab, [("mixed-terminate", "tls.example.com", "backend-v1"),
                  ("mixed-passthrough", "abc.example.com", "tls-backend")])


def _misdirected(lab: Lab) -> None:
    """Upstream's table over HTTP/2: a Host whose listener is not the one the SNI chose
    is answered 421, on a connection that also carries the SNI's own requests."""
    plan: dict[str, list[str]] = {}
    for sni, host, _, _ in MISDIRECTED_TABLE:
        plan.setdefault(sni, []).append(host)
    args = (gateway_address(lab, NS, TLS_GW), "443", pki(NAMES).ca, MIS_PATH,
            json.dumps(list(plan.items())))

    def once() -> None:
        got = lab.run_py(NS, lab.pod(NS, "client"), GRPC_PYTHON, H2_PROBE, *args)
        answers = {(a["sni"], a["host"]): a for a in got}
        problems = []
        for sni, host, status, want in MISDIRECTED_TABLE:
            a = answers.get((sni, host)) or {"error": "no answer"}
            if a.get("status") != status or (
                    want and deployment_of(str(a.get("pod"))) != want):
                problems.append(f"SNI {sni} :authority {host}: {json.dumps(a)}, want {status}"
                                + (f" from {want}" if want else ""))
        if problems:
            raise CaseFailed("; ".join(problems))

    eventually(once, timeout=45)


TLS = _tls_manifests()
"""The TLS cases' objects (``tls_status`` adds its routes to them)."""
MISDIRECTED_OBJECTS = _misdirected_manifests()
CASES = [
    Case("TLSRouteHostnameIntersection", "GATEWAY-TLS", CORE, TLS, _intersection,
         kinds=("TLSRoute",)),
    Case("TLSRouteInvalidReferenceGrant", "GATEWAY-TLS", (*CORE, "ReferenceGrant"), TLS,
         _invalid_grant, kinds=("TLSRoute",)),
    Case("TLSRouteTerminateSimpleSameNamespace", "GATEWAY-TLS", (*CORE, TERMINATE), TLS,
         _terminate, kinds=("TLSRoute",)),
    Case("TLSRouteMixedTerminationSameNamespace", "GATEWAY-TLS", (*CORE, TERMINATE, MIXED),
         TLS, _mixed, kinds=("TLSRoute",)),
    Case("HTTPRouteHTTPSListenerDetectMisdirectedRequests", "GATEWAY-HTTP",
         ("Gateway", "HTTPRoute", MISDIRECTED), MISDIRECTED_OBJECTS,
         _misdirected),
]
