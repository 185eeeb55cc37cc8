"""The kinds Tulle understands, and resolution of user-typed kind names (`tulle get svc`)."""

from __future__ import annotations

from dataclasses import dataclass

from agent.model.validation import quote


@dataclass(frozen=True, slots=True)
class KindInfo:
    """One kind: accepted apiVersions (the first is the one Tulle writes), names, scope."""

    kind: str
    api_versions: tuple[str, ...]
    plural: str
    short_names: tuple[str, ...] = ()
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        """The apiVersion Tulle writes in ``to_dict``."""
        return self.api_versions[0]

    @property
    def group(self) -> str:
        """The API group; "" for the core group."""
        group, _, _ = self.api_version.rpartition("/")
        return group

    @property
    def resource(self) -> str:
        """The qualified resource name, e.g. "httproutes.gateway.networking.k8s.io"."""
        return f"{self.plural}.{self.group}" if self.group else self.plural


_GW = "gateway.networking.k8s.io"
_SEC = "security.tulle.io"
_POL = "policy.tulle.io"
_NET = "networking.tulle.io"

KINDS: tuple[KindInfo, ...] = (
    KindInfo("Namespace", ("v1",), "namespaces", ("ns",), namespaced=False),
    KindInfo("Node", ("v1",), "nodes", ("no",), namespaced=False),
    KindInfo("Pod", ("v1",), "pods", ("po",)),
    KindInfo("Service", ("v1",), "services", ("svc",)),
    KindInfo("Secret", ("v1",), "secrets"),
    KindInfo("ConfigMap", ("v1",), "configmaps", ("cm",)),
    KindInfo("Deployment", ("apps/v1",), "deployments", ("deploy",)),
    KindInfo("EndpointSlice", ("discovery.k8s.io/v1",), "endpointslices"),
    KindInfo("NetworkPolicy", ("networking.k8s.io/v1",), "networkpolicies", ("netpol",)),
    KindInfo("Ingress", ("networking.k8s.io/v1",), "ingresses", ("ing",)),
    KindInfo("IngressClass", ("networking.k8s.io/v1",), "ingressclasses", namespaced=False),
    KindInfo(
        "GatewayClass", (f"{_GW}/v1", f"{_GW}/v1beta1"), "gatewayclasses", ("gc",), namespaced=False
    ),
    KindInfo("Gateway", (f"{_GW}/v1", f"{_GW}/v1beta1"), "gateways", ("gtw",)),
    KindInfo("HTTPRoute", (f"{_GW}/v1", f"{_GW}/v1beta1"), "httproutes"),
    KindInfo("GRPCRoute", (f"{_GW}/v1",), "grpcroutes"),
    KindInfo("TLSRoute", (f"{_GW}/v1",), "tlsroutes"),
    KindInfo("ListenerSet", (f"{_GW}/v1",), "listenersets", ("lset",)),
    KindInfo("TCPRoute", (f"{_GW}/v1", f"{_GW}/v1alpha2"), "tcproutes"),
    KindInfo("UDPRoute", (f"{_GW}/v1", f"{_GW}/v1alpha2"), "udproutes"),
    KindInfo("BackendTLSPolicy", (f"{_GW}/v1",), "backendtlspolicies", ("btlspolicy",)),
    KindInfo("ReferenceGrant", (f"{_GW}/v1beta1", f"{_GW}/v1"), "referencegrants", ("refgrant",)),
    KindInfo("PeerAuthentication", (f"{_SEC}/v1",), "peerauthentications", ("pa",)),
    KindInfo("BackendTrafficPolicy", (f"{_POL}/v1alpha1",), "backendtrafficpolicies", ("btp",)),
    KindInfo("AuthorizationPolicy", (f"{_SEC}/v1",), "authorizationpolicies", ("ap",)),
    KindInfo("HTTPFault", (f"{_POL}/v1alpha1",), "httpfaults"),
    KindInfo(
        "HTTPLocalRateLimitPolicy", (f"{_POL}/v1alpha1",), "httplocalratelimitpolicies", ("rlp",)
    ),
    KindInfo(
        "LoadBalancerIPPool", (f"{_NET}/v1alpha1",), "loadbalancerippools", ("lbippool",),
        namespaced=False,
    ),
)

_BY_KIND = {info.kind: info for info in KINDS}


class UnknownKindError(LookupError):
    """The text names no kind Tulle knows. ``str()`` lists the known kinds."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return f"unknown kind {quote(self.text)}; known kinds: {known_kinds()}"


def known_kinds() -> str:
    """The known kinds, sorted and comma-separated, for error messages."""
    return ", ".join(sorted(_BY_KIND))


def kind_info(kind: str) -> KindInfo:
    """The KindInfo for an exact ``kind`` as written in a manifest (case-sensitive)."""
    try:
        return _BY_KIND[kind]
    except KeyError:
        raise UnknownKindError(kind) from None


def _group_suffixes(info: KindInfo) -> set[str]:
    """Accepted text after the first '.': "apps", "v1.apps", "v1" (core), ..."""
    suffixes = set()
    for api_version in info.api_versions:
        group, _, version = api_version.rpartition("/")
        if group:
            suffixes.update({group, f"{version}.{group}"})
        else:
            suffixes.add(version)
    return suffixes


def resolve_kind(text: str) -> KindInfo:
    """Resolve what a user typed: "HTTPRoute", "httproute", "httproutes",
    "httproutes.gateway.networking.k8s.io", "svc", "deployments.v1.apps", ...

    Matching is case-insensitive. Raises UnknownKindError.
    """
    name, _, suffix = text.strip().lower().partition(".")
    for info in KINDS:
        if name not in (info.kind.lower(), info.plural, *info.short_names):
            continue
        if not suffix or suffix in _group_suffixes(info):
            return info
    raise UnknownKindError(text)
