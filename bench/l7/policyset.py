"""Issue 14's benchmark policies, one definition for both peers (pure data).

On the Gateway listener the route table (``bench.l7.table``) already serves:

- 20 AuthorizationPolicy rules, one per policy, all in the Gateway's namespace with
  ``targetRefs`` naming the Gateway (Istio's way to put policy on an ingress gateway; every
  request of the benchmark arrives there, so every policy applies to every request, and
  Envoy's one listener gets all of them). 12 are DENY rules and 8 ALLOW rules, over
  principals, namespaces, ServiceAccounts, IP blocks, paths, methods, hosts and request
  headers. The measured request matches no DENY rule and only the last ALLOW rule by name,
  so both peers evaluate every rule before letting it through (both evaluate policies in
  name order: Tulle sorts them, Envoy's RBAC engine keeps them in a sorted map). The
  choice "DENY rules that never match plus one ALLOW that does" keeps the request mix
  succeeding while making both peers do the whole table's work on every request.
- an HTTPLocalRateLimitPolicy on the backend Service: ``total`` of ``RATE`` requests per
  second, far above what one core serves, so it is charged on every request and never
  refuses one (no ``identity`` bucket: Envoy's ``local_ratelimit`` can only express a
  per-client bucket through route descriptors, which would no longer be the same work).
- a BackendTrafficPolicy on the backend Service with outlier detection on (Istio's
  DestinationRule fields; nginx never fails, so nothing is ejected).

The caller (wrk, and the probes) is a Pod at ``CLIENT_IP``: namespace ``CLIENT_NAMESPACE``,
ServiceAccount ``CLIENT_SA``. Tulle's waypoint derives the caller's identity from the pod at
the client address; Envoy, without mTLS in the benchmark, is given each identity as the
addresses of the pods that hold it (``bench.l7.envoy_policy``).

``DENIED`` are requests both peers must refuse with 403 (checked before measuring).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench.l7.table import GATEWAY, NAMESPACE, SERVICE

CLIENT_NAMESPACE = "bench-client"
CLIENT_SA = "loadgen"
CLIENT_IP = "127.0.0.1"
TRUST_DOMAIN = "cluster.local"
CLIENT_PRINCIPAL = f"{TRUST_DOMAIN}/ns/{CLIENT_NAMESPACE}/sa/{CLIENT_SA}"
RATE = 1_000_000
"""requests per second: never reached by one core (the waypoint serves about 10^4)."""

_AUTHZ = "security.tulle.io/v1"
_POLICY = "policy.tulle.io/v1alpha1"
_WRITES = ["POST", "PUT", "PATCH", "DELETE"]

# (name, action, rule): every rule Istio-shaped (from / to / when).
RULES: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("deny-admin-paths", "DENY", {"to": [{"operation": {"paths": ["*/admin"]}}]}),
    ("deny-internal", "DENY", {"to": [{"operation": {"paths": ["/internal/*"]}}]}),
    ("deny-debug-header", "DENY",
     {"when": [{"key": "request.headers[x-debug]", "values": ["*"]}]}),
    ("deny-untrusted-namespaces", "DENY",
     {"from": [{"source": {"namespaces": ["untrusted", "sandbox-*"]}}]}),
    ("deny-legacy-principals", "DENY",
     {"from": [{"source": {"principals": [f"{TRUST_DOMAIN}/ns/legacy/sa/batch",
                                          f"{TRUST_DOMAIN}/ns/legacy/sa/cron"]}}]}),
    ("deny-bad-networks", "DENY",
     {"from": [{"source": {"ipBlocks": ["203.0.113.0/24", "198.51.100.0/24"]}}]}),
    ("deny-foreign-writes", "DENY",
     {"from": [{"source": {"notNamespaces": [CLIENT_NAMESPACE]}}],
      "to": [{"operation": {"methods": _WRITES}}]}),
    ("deny-trace-connect", "DENY", {"to": [{"operation": {"methods": ["TRACE", "CONNECT"]}}]}),
    ("deny-dotfiles", "DENY", {"to": [{"operation": {"paths": ["*.env", "*.git"]}}]}),
    ("deny-old-clients", "DENY",
     {"when": [{"key": "request.headers[x-client-version]", "values": ["0.*"]}]}),
    ("deny-admin-hosts", "DENY",
     {"to": [{"operation": {"hosts": ["admin.example.com", "*.internal"]}}]}),
    ("deny-unlisted-accounts-writes", "DENY",
     {"from": [{"source": {"notServiceAccounts": [f"{CLIENT_NAMESPACE}/{CLIENT_SA}"]}}],
      "to": [{"operation": {"methods": ["DELETE"], "paths": ["/svc*"]}}]}),
    ("allow-monitoring", "ALLOW",
     {"from": [{"source": {"namespaces": ["monitoring"]}}],
      "to": [{"operation": {"paths": ["/metrics", "/healthz"]}}]}),
    ("allow-frontend", "ALLOW",
     {"from": [{"source": {"principals": [f"{TRUST_DOMAIN}/ns/frontend/sa/web"]}}]}),
    ("allow-health", "ALLOW",
     {"to": [{"operation": {"methods": ["GET"], "paths": ["/healthz", "/readyz"]}}]}),
    ("allow-partner-network", "ALLOW", {"from": [{"source": {"ipBlocks": ["192.0.2.0/24"]}}]}),
    ("allow-canary", "ALLOW",
     {"to": [{"operation": {"methods": ["GET"]}}],
      "when": [{"key": "request.headers[x-canary]", "values": ["v99"]}]}),
    ("allow-api-reads", "ALLOW",
     {"from": [{"source": {"namespaces": ["frontend", "mobile"]}}],
      "to": [{"operation": {"methods": ["GET", "HEAD"], "paths": ["/api/*"]}}]}),
    ("allow-batch-accounts", "ALLOW",
     {"from": [{"source": {"serviceAccounts": ["batch/worker", "batch/report"]}}]}),
    ("zz-allow-loadgen", "ALLOW",
     {"from": [{"source": {"principals": [CLIENT_PRINCIPAL]}}],
      "to": [{"operation": {"methods": ["GET", "HEAD"], "paths": ["/svc*"]}}]}),
)


@dataclass(frozen=True, slots=True)
class Denied:
    """A request both peers must answer 403, and the rule that refuses it."""

    method: str
    suffix: str
    """Appended to the measured request's path."""
    headers: tuple[tuple[str, str], ...]
    why: str


DENIED = (
    Denied("GET", "/admin", (), "deny-admin-paths (DENY matches)"),
    Denied("GET", "", (("x-debug", "1"),), "deny-debug-header (DENY matches)"),
    Denied("DELETE", "", (), "no ALLOW rule allows DELETE"),
)


def client_pod() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "wrk", "namespace": CLIENT_NAMESPACE, "labels": {"app": "wrk"}},
        "spec": {"containers": [{"name": "wrk", "image": "wrk"}],
                 "serviceAccountName": CLIENT_SA},
        "status": {"phase": "Running", "podIP": CLIENT_IP},
    }


def authorization_policies() -> list[dict[str, Any]]:
    gw_ns, gw_name = GATEWAY
    return [
        {
            "apiVersion": _AUTHZ,
            "kind": "AuthorizationPolicy",
            "metadata": {"name": name, "namespace": gw_ns},
            "spec": {
                "targetRefs": [{"group": "gateway.networking.k8s.io", "kind": "Gateway",
                                "name": gw_name}],
                "action": action,
                "rules": [rule],
            },
        }
        for name, action, rule in RULES
    ]


def _service_ref() -> list[dict[str, str]]:
    return [{"group": "", "kind": "Service", "name": SERVICE}]


def rate_limit_policy() -> dict[str, Any]:
    return {
        "apiVersion": _POLICY,
        "kind": "HTTPLocalRateLimitPolicy",
        "metadata": {"name": "backend-limit", "namespace": NAMESPACE},
        "spec": {"targetRefs": _service_ref(), "total": {"requestsPerSecond": RATE}},
    }


def backend_traffic_policy() -> dict[str, Any]:
    return {
        "apiVersion": _POLICY,
        "kind": "BackendTrafficPolicy",
        "metadata": {"name": "backend-outliers", "namespace": NAMESPACE},
        "spec": {
            "targetRefs": _service_ref(),
            "outlierDetection": {
                "consecutive5xxErrors": 5,
                "consecutiveGatewayErrors": 3,
                "interval": "10s",
                "baseEjectionTime": "30s",
                "maxEjectionPercent": 50,
            },
        },
    }


PARTS = ("authz", "ratelimit", "outlier")


def documents(parts: tuple[str, ...] = PARTS) -> list[dict[str, Any]]:
    """What the policies add to the waypoint's config file: all of them, or some ``parts``
    (the diagnostics' breakdown)."""
    unknown = set(parts) - set(PARTS)
    if unknown:
        raise ValueError(f"policy parts {sorted(unknown)}: expected some of {PARTS}")
    out = [client_pod()]
    if "authz" in parts:
        out += authorization_policies()
    if "ratelimit" in parts:
        out.append(rate_limit_policy())
    if "outlier" in parts:
        out.append(backend_traffic_policy())
    return out
