"""GATEWAY-TLS status cases, after upstream v1.6.1's tlsroute-invalid-*.go and
tlsroute-listener-terminate-supported-kinds.go, on the Gateway of ``tls.py``: a backend
that does not exist or is of an unknown kind (ResolvedRefs False; the route stays Accepted
and its connections are refused rather than given to a wildcard route that would serve
the name), route hostnames no listener has (NoMatchingListenerHostname), a parentRef to
an HTTP or HTTPS listener (NotAllowedByListeners) or to a section the Gateway lacks
(NoMatchingParent), and the Terminate listener's kinds."""

from __future__ import annotations

from conformance.case import Case
from conformance.cases.tls import (
    CORE,
    TERMINATE,
    TLS,
    expect_connections,
    expect_route,
    expect_tls_listeners,
    tls_route,
)
from conformance.lab import Lab

PROFILE = "GATEWAY-TLS"
NONEXISTENT = "nonexistent.example.com"
UNKNOWN_KIND = "unknown-kind.example.com"
MISMATCH = "mismatch.example.net"

ROUTES = (
    tls_route("invalid-backend-ref-nonexistent", ("wild",), NONEXISTENT, "does-not-exist"),
    tls_route("invalid-backend-ref-unknown-kind", ("wild",), UNKNOWN_KIND, "tls-backend",
              group="unknown.example.com", kind="UnknownKind"),
    tls_route("hostname-mismatch-1", ("exact",), MISMATCH, "tls-backend"),
    tls_route("hostname-mismatch-2", ("wild",), MISMATCH, "tls-backend"),
    tls_route("not-allowed-protocol-http", ("http",), "http.example.com", "tls-backend"),
    tls_route("not-allowed-protocol-https", ("https",), "https.example.com", "tls-backend"),
    tls_route("no-matching-section-name", ("does-not-exist",), "section.example.com",
              "tls-backend"),
)


def _nonexistent(lab: Lab) -> None:
    """Accepted, ResolvedRefs False BackendNotFound; a connection for its hostname is
    refused (the "*.com" route on the same listener must not take it)."""
    expect_route(lab, "invalid-backend-ref-nonexistent", {
        "Accepted": ("True", None), "ResolvedRefs": ("False", "BackendNotFound")})
    expect_connections(lab, [("wild", NONEXISTENT, None)])


def _unknown_kind(lab: Lab) -> None:
    """Accepted, ResolvedRefs False InvalidKind; its connections are refused."""
    expect_route(lab, "invalid-backend-ref-unknown-kind", {
        "Accepted": ("True", None), "ResolvedRefs": ("False", "InvalidKind")})
    expect_connections(lab, [("wild", UNKNOWN_KIND, None)])


def _no_matching_listener_hostname(lab: Lab) -> None:
    """A hostname outside an exact and a wildcard listener's: Accepted False
    NoMatchingListenerHostname on each, and no connection is served for it."""
    for name in ("hostname-mismatch-1", "hostname-mismatch-2"):
        expect_route(lab, name, {"Accepted": ("False", "NoMatchingListenerHostname")})
    expect_connections(lab, [("exact", MISMATCH, None), ("wild", MISMATCH, None)])


def _no_matching_listener(lab: Lab) -> None:
    """An HTTP and an HTTPS listener: Accepted False NotAllowedByListeners; a sectionName
    the Gateway does not have: Accepted False NoMatchingParent."""
    for name in ("not-allowed-protocol-http", "not-allowed-protocol-https"):
        expect_route(lab, name, {"Accepted": ("False", "NotAllowedByListeners")})
    expect_route(lab, "no-matching-section-name", {"Accepted": ("False", "NoMatchingParent")})


def _terminate_kinds(lab: Lab) -> None:
    """A Terminate listener is Accepted with TLSRoute in its supportedKinds."""
    expect_tls_listeners(lab, ("terminate", "mixed-terminate"), attached=None)


OBJECTS = (*TLS, *ROUTES)
CASES = [
    Case("TLSRouteInvalidBackendRefNonexistent", PROFILE, CORE, OBJECTS, _nonexistent,
         kinds=("TLSRoute",)),
    Case("TLSRouteInvalidBackendRefUnknownKind", PROFILE, CORE, OBJECTS, _unknown_kind,
         kinds=("TLSRoute",)),
    Case("TLSRouteInvalidNoMatchingListenerHostname", PROFILE, CORE, OBJECTS,
         _no_matching_listener_hostname, kinds=("TLSRoute",)),
    Case("TLSRouteInvalidNoMatchingListener", PROFILE, CORE, OBJECTS, _no_matching_listener,
         kinds=("TLSRoute",)),
    Case("TLSRouteListenerTerminateSupportedKinds", PROFILE, (*CORE, TERMINATE), OBJECTS,
         _terminate_kinds, kinds=("TLSRoute",)),
]
