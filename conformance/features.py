"""The Gateway API v1.6.1 feature registry and conformance profiles, as names (pure data).

Transcribed from the upstream registry (pkg/features/*.go) and profiles
(conformance/utils/suite/profiles.go). A profile has core features (all must pass to be
conformant at all) and extended ones (claimed one by one). GATEWAY-UDP is v1.6's new profile
(UDPRoute v1)."""

from __future__ import annotations

from dataclasses import dataclass

GATEWAY = "Gateway"
REFERENCE_GRANT = "ReferenceGrant"
HTTP_ROUTE = "HTTPRoute"
GRPC_ROUTE = "GRPCRoute"
TLS_ROUTE = "TLSRoute"
TCP_ROUTE = "TCPRoute"
UDP_ROUTE = "UDPRoute"
MESH = "Mesh"

GATEWAY_EXTENDED = (
    "GatewayPort8080",
    "GatewayStaticAddresses",
    "GatewayHTTPListenerIsolation",
    "GatewayHTTPSListenerDetectMisdirectedRequests",
    "GatewayInfrastructurePropagation",
    "GatewayAddressEmpty",
    "ListenerSet",  # v1.6.1 pkg/features/gateway.go: SupportListenerSet = "ListenerSet"
    "GatewayBackendClientCertificate",
    "GatewayFrontendClientCertificateValidation",
    "GatewayFrontendClientCertificateValidationInsecureFallback",
)
HTTP_ROUTE_EXTENDED = (
    "HTTPRouteDestinationPortMatching",
    "HTTPRouteBackendRequestHeaderModification",
    "HTTPRouteQueryParamMatching",
    "HTTPRouteMethodMatching",
    "HTTPRouteResponseHeaderModification",
    "HTTPRoutePortRedirect",
    "HTTPRouteSchemeRedirect",
    "HTTPRoutePathRedirect",
    "HTTPRouteHostRewrite",
    "HTTPRoutePathRewrite",
    "HTTPRouteRequestMirror",
    "HTTPRouteRequestMultipleMirrors",
    "HTTPRouteRequestPercentageMirror",
    "HTTPRouteRequestTimeout",
    "HTTPRouteBackendTimeout",
    "HTTPRouteParentRefPort",
    "HTTPRouteBackendProtocolH2C",
    "HTTPRouteBackendProtocolWebSocket",
    "HTTPRouteNamedRouteRule",
    "HTTPRouteCORS",
    "HTTPRoute303RedirectStatusCode",
    "HTTPRoute307RedirectStatusCode",
    "HTTPRoute308RedirectStatusCode",
    "HTTPRouteRetry",
    "HTTPRouteRetryBackendTimeout",
    "HTTPRouteRetryConnectionError",
)
BACKEND_TLS = ("BackendTLSPolicy", "BackendTLSPolicySANValidation")
MESH_EXTENDED = (
    "MeshClusterIPMatching",
    "MeshConsumerRoute",
    "MeshHTTPRouteRewritePath",
    "MeshHTTPRouteSchemeRedirect",
    "MeshHTTPRouteRedirectPort",
    "MeshHTTPRouteRedirectPath",
    "MeshHTTPRouteBackendRequestHeaderModification",
    "MeshHTTPRouteQueryParamMatching",
    "MeshHTTPRouteNamedRouteRule",
)
# v1.6.1 defines GRPCRouteExtendedFeatures but no profile includes it (GATEWAY-GRPC's extended
# set is the Gateway's only), so a case naming it counts in no profile of the report.
GRPC_ROUTE_EXTENDED = ("GRPCRouteNamedRouteRule",)
TLS_ROUTE_EXTENDED = ("TLSRouteModeTerminate", "TLSRouteModeMixed")
# TCPRouteExtendedFeatures and UDPRouteFeatures hold the route feature itself, which is
# therefore both core and extended in GATEWAY-TCP and GATEWAY-UDP (upstream profiles.go).
TCP_ROUTE_EXTENDED = (TCP_ROUTE,)
UDP_ROUTE_EXTENDED = (UDP_ROUTE,)


@dataclass(frozen=True)
class Profile:
    name: str
    core: frozenset[str]
    extended: tuple[str, ...]  # in registry order; the report lists them sorted

    def has(self, feature: str) -> bool:
        return feature in self.core or feature in self.extended


def _profile(name: str, core: tuple[str, ...], *extended: tuple[str, ...]) -> Profile:
    names = tuple(dict.fromkeys(f for group in extended for f in group))
    return Profile(name, frozenset(core), names)


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        _profile("GATEWAY-HTTP", (GATEWAY, REFERENCE_GRANT, HTTP_ROUTE),
                 GATEWAY_EXTENDED, HTTP_ROUTE_EXTENDED, BACKEND_TLS),
        _profile("GATEWAY-GRPC", (GATEWAY, REFERENCE_GRANT, GRPC_ROUTE), GATEWAY_EXTENDED),
        _profile("GATEWAY-TLS", (GATEWAY, REFERENCE_GRANT, TLS_ROUTE),
                 GATEWAY_EXTENDED, TLS_ROUTE_EXTENDED),
        _profile("GATEWAY-TCP", (GATEWAY, REFERENCE_GRANT, TCP_ROUTE),
                 GATEWAY_EXTENDED, TCP_ROUTE_EXTENDED),
        _profile("GATEWAY-UDP", (GATEWAY, REFERENCE_GRANT, UDP_ROUTE),
                 GATEWAY_EXTENDED, UDP_ROUTE_EXTENDED),
        _profile("MESH-HTTP", (MESH, HTTP_ROUTE), MESH_EXTENDED),
        _profile("MESH-GRPC", (MESH, GRPC_ROUTE), MESH_EXTENDED),
    )
}

# Registry features that no v1.6.1 profile lists: a case may name them (its claim is then
# proven and published by the GatewayClass), but no profile of the report counts it.
IN_NO_PROFILE = frozenset(GRPC_ROUTE_EXTENDED)


def profiles_of(features: tuple[str, ...]) -> list[Profile]:
    """The profiles a test with these features counts in: each that has all of them, core
    or extended (upstream suite/profiles.go getConformanceProfilesForTest)."""
    return [p for p in PROFILES.values() if all(p.has(f) for f in features)]
