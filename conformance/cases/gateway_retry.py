"""HTTPRoute retries (GEP-1731; v1.6.1's experimental HTTPRouteRetry features).

HTTPRouteRetry follows upstream's httproute-retry.go table: the echo backend's ``/retry/``
answers the first ``succeedAfter`` requests carrying one ``uuid`` with ``responseCode`` and
later ones with its echo, so a retried request succeeds when the retries cover the failures
and gets the backend's failing status when they do not, or when the code is not one the rule
retries. HTTPRouteRetryConnectionError and HTTPRouteRetryBackendTimeout have no upstream test
in v1.6.1; these cases are written from the feature names and GEP-1731: a rule with a retry
stanza retries an attempt whose connection the backend resets (``failWith=reset``) and one
that runs past ``timeouts.backendRequest`` (``delayRetry``), and when every attempt fails the
client gets the gateway's error for the last one (a 5xx; 504 for the timeout).

Every probe carries a fresh uuid, so a probe repeated until the route is programmed starts
its backend's count again."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlencode

from conformance.case import Case, CaseFailed
from conformance.cases.common import (
    GATEWAY_BASE,
    INFRA,
    backend,
    deployment_of,
    gateway_address,
    gateway_parent,
    http_route,
    prefix,
)
from conformance.lab import Lab, eventually

PROFILE = "GATEWAY-HTTP"
CORE = ("Gateway", "HTTPRoute")
V3 = "infra-backend-v3"
CODE_500 = "/retry/code-500-attempts-3"
CODE_ALL = "/retry/code-all-attempts-2"
RESET = "/retry/connection-error-attempts-2"
SLOW = "/retry/backend-timeout-attempts-2"
ANY_5XX = 0  # an expected status of 0: any 5xx
# (path, query, status): 200 is the echo of V3
Probe = tuple[str, dict[str, str], int]
RETRY_TABLE: tuple[Probe, ...] = (
    (CODE_500, {"responseCode": "500", "succeedAfter": "2"}, 200),
    (CODE_500, {"responseCode": "500", "succeedAfter": "4"}, 500),
    (CODE_500, {"responseCode": "503", "succeedAfter": "2"}, 503),  # 503 is not retried
    *((CODE_ALL, {"responseCode": str(c), "succeedAfter": "1"}, 200) for c in (500, 502, 503, 504)),
    *((CODE_ALL, {"responseCode": str(c), "succeedAfter": "3"}, c) for c in (500, 502, 503, 504)),
)
RESET_TABLE: tuple[Probe, ...] = (
    (RESET, {"failWith": "reset", "succeedAfter": "2"}, 200),
    (RESET, {"failWith": "reset", "succeedAfter": "3"}, ANY_5XX),
)
TIMEOUT_TABLE: tuple[Probe, ...] = (
    (SLOW, {"delayRetry": "2s", "succeedAfter": "1"}, 200),
    (SLOW, {"delayRetry": "2s", "succeedAfter": "3"}, 504),
)


def _route(name: str, rules: list[dict[str, Any]]) -> dict[str, Any]:
    return http_route(INFRA, name, gateway_parent(), rules, hostnames=[f"{name}.example.com"])


def _rule(path: str, retry: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"matches": [prefix(path)], "retry": retry, "backendRefs": [backend(V3)], **extra}


ROUTES = {
    "HTTPRouteRetry": _route("httprouteretry", [
        _rule(CODE_500, {"codes": [500], "attempts": 3}),
        _rule(CODE_ALL, {"codes": [500, 502, 503, 504], "attempts": 2})]),
    "HTTPRouteRetryConnectionError": _route("httprouteretryconnectionerror", [
        _rule(RESET, {"attempts": 2})]),
    "HTTPRouteRetryBackendTimeout": _route("httprouteretrybackendtimeout", [
        _rule(SLOW, {"attempts": 2}, timeouts={"request": "10s", "backendRequest": "500ms"})]),
}


def mismatch(got: dict[str, Any], want: int) -> str | None:
    """What is wrong with one answer, or None."""
    if "error" in got:
        return f"no answer: {got['error']}"
    status = got.get("status")
    if want == ANY_5XX:
        return None if isinstance(status, int) and 500 <= status <= 599 else \
            f"status {status}, want a 5xx"
    if status != want:
        return f"status {status}, want {want}"
    if want == 200:
        body = got.get("body")
        pod = body.get("pod", "") if isinstance(body, dict) else ""
        if deployment_of(str(pod)) != V3:
            return f"answered by {pod!r}, want a pod of {V3}"
    return None


def _probe(name: str, table: tuple[Probe, ...]) -> Any:
    host = ROUTES[name]["spec"]["hostnames"][0]

    def check(lab: Lab) -> None:
        base = f"http://{gateway_address(lab)}"

        def once() -> None:
            requests = [{"url": f"{base}{path}?{urlencode({**q, 'uuid': str(uuid.uuid4())})}",
                         "host": host, "timeout": 15} for path, q, _ in table]
            answers = lab.http(INFRA, lab.pod(INFRA, "client"), requests)
            problems = [f"{path}?{urlencode(q)}: {why}"
                        for (path, q, want), got in zip(table, answers, strict=True)
                        if (why := mismatch(got, want))]
            if problems:
                raise CaseFailed("; ".join(problems))

        eventually(once, timeout=45)

    return check


CASES = [
    Case("HTTPRouteRetry", PROFILE, (*CORE, "HTTPRouteRetry"),
         (*GATEWAY_BASE, ROUTES["HTTPRouteRetry"]), _probe("HTTPRouteRetry", RETRY_TABLE)),
    Case("HTTPRouteRetryConnectionError", PROFILE,
         (*CORE, "HTTPRouteRetry", "HTTPRouteRetryConnectionError"),
         (*GATEWAY_BASE, ROUTES["HTTPRouteRetryConnectionError"]),
         _probe("HTTPRouteRetryConnectionError", RESET_TABLE)),
    Case("HTTPRouteRetryBackendTimeout", PROFILE,
         (*CORE, "HTTPRouteRetry", "HTTPRouteRetryBackendTimeout"),
         (*GATEWAY_BASE, ROUTES["HTTPRouteRetryBackendTimeout"]),
         _probe("HTTPRouteRetryBackendTimeout", TIMEOUT_TABLE)),
]
