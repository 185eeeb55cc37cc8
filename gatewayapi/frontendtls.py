"""Frontend client-certificate validation (GEP-91, Gateway ``spec.tls.frontend``): what the
HTTPS listeners of each port of a Gateway ask of clients, and why a reference does not
resolve. Pure: the waypoint turns the result into a verifying ``ssl.SSLContext``
(``l7proxy/tlscerts.py``); the status code turns the problems into conditions.

- Validation is per port, never per listener: every HTTPS listener on a port shares one
  TCP connection's handshake, and HTTP/2 coalescing lets one connection reach them all
  (GEP-3567), so a per-listener setting could be bypassed. ``perPort`` overrides
  ``default`` for its port.
- A ``caCertificateRefs`` entry resolves when it names a core ConfigMap (else
  ``InvalidCACertificateKind``), of the Gateway's namespace or of one whose ReferenceGrant
  allows it (else ``RefNotPermitted``), that exists and holds a PEM CA in ``ca.crt`` (else
  ``InvalidCACertificateRef``). Each problem sets the listeners' ResolvedRefs False; with
  none resolved the listeners are ``Accepted=False, NoValidCACertificate`` and not
  programmed, so their port is never served without the validation it asked for.
- ``AllowInsecureFallback`` sets the Gateway's ``InsecureFrontendValidationMode`` condition
  (reason ``ConfigurationChanged``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from agent.model.core import ConfigMap
from agent.model.gateway import (
    GATEWAY_GROUP,
    FrontendValidationMode,
    Gateway,
    Listener,
    ListenerProtocol,
)
from gatewayapi.backends import Grants
from gatewayapi.backendtls import CA_KEY, ca_problem

INVALID_KIND = "InvalidCACertificateKind"
INVALID_REF = "InvalidCACertificateRef"
NOT_PERMITTED = "RefNotPermitted"
NO_VALID_CA = "NoValidCACertificate"


@dataclass(frozen=True, slots=True)
class ClientValidation:
    """What a port asks of clients: ``ca_pem`` the resolved CA bundle (empty when none
    resolved); ``insecure_fallback`` serves clients without a valid certificate."""

    ca_pem: bytes
    insecure_fallback: bool = False
    problems: tuple[tuple[str, str], ...] = field(default=(), compare=False)
    """(reason, message) per reference that did not resolve: ResolvedRefs False, but they
    do not stop a listener that keeps a usable CA (the spec stops it, with
    ``NoValidCACertificate``, only when none is left)."""

    @property
    def usable(self) -> bool:
        return bool(self.ca_pem)


def referenced_ca_config_maps(gateways: Iterable[Gateway]) -> frozenset[tuple[str, str]]:
    """(namespace, name) of every ConfigMap some Gateway's client-certificate validation
    names: the only ConfigMaps routing reads, so a change to any other one (an application's
    configuration, ``kube-root-ca.crt``) recompiles nothing."""
    found: set[tuple[str, str]] = set()
    for gateway in gateways:
        tls = gateway.spec.tls
        if tls is None or tls.frontend is None:
            continue
        settings = [tls.frontend.default, *(entry.tls for entry in tls.frontend.per_port)]
        for validation in (s.validation for s in settings if s.validation is not None):
            found.update((ref.namespace or gateway.metadata.namespace, ref.name)
                         for ref in validation.ca_certificate_refs)
    return frozenset(found)


def client_validation(
    gateway: Gateway,
    listener: Listener,
    config_maps: Mapping[tuple[str, str], ConfigMap],
    grants: Grants,
) -> ClientValidation | None:
    """The validation ``listener`` applies, or None (no validation: an HTTP listener, or
    no ``spec.tls.frontend`` entry for its port)."""
    tls = gateway.spec.tls
    if listener.protocol is not ListenerProtocol.HTTPS or tls is None or tls.frontend is None:
        return None
    validation = tls.frontend.for_port(listener.port)
    if validation is None:
        return None
    gw_ns = gateway.metadata.namespace
    pems: list[str] = []
    problems: list[tuple[str, str]] = []
    for i, ref in enumerate(validation.ca_certificate_refs):
        ns = ref.namespace or gw_ns
        where = f"caCertificateRefs[{i}] ConfigMap {ns}/{ref.name}"
        if ref.group not in ("", "core") or ref.kind != "ConfigMap":
            shown = f"{ref.group}/{ref.kind}" if ref.group else ref.kind
            problems.append((INVALID_KIND, f"caCertificateRefs[{i}]: unsupported kind {shown} "
                                           "(ConfigMap only)"))
        elif not grants.allows(GATEWAY_GROUP, "Gateway", gw_ns, "", "ConfigMap", ns, ref.name):
            problems.append((NOT_PERMITTED, f"{where}: no ReferenceGrant in {ns} allows "
                                            f"Gateways from {gw_ns} to use it"))
        elif (config_map := config_maps.get((ns, ref.name))) is None:
            problems.append((INVALID_REF, f"{where} not found"))
        elif (pem := config_map.data.get(CA_KEY)) is None:
            problems.append((INVALID_REF, f"{where} has no key {CA_KEY}"))
        elif (why := ca_problem(pem)) is not None:
            problems.append((INVALID_REF, f"{where} {CA_KEY} {why}"))
        else:
            pems.append(pem if pem.endswith("\n") else pem + "\n")
    return ClientValidation(
        "".join(pems).encode(),
        validation.mode is FrontendValidationMode.ALLOW_INSECURE_FALLBACK,
        tuple(problems),
    )


def insecure_fallback_ports(gateway: Gateway) -> list[str]:
    """Where the Gateway allows AllowInsecureFallback ("default", "port N"), for its
    ``InsecureFrontendValidationMode`` condition; empty: the condition is absent."""
    tls = gateway.spec.tls
    frontend = tls.frontend if tls is not None else None
    if frontend is None:
        return []
    fallback = FrontendValidationMode.ALLOW_INSECURE_FALLBACK
    where = []
    default = frontend.default.validation
    if default is not None and default.mode is fallback:
        where.append("default")
    for entry in frontend.per_port:
        validation = entry.tls.validation
        if validation is not None and validation.mode is fallback:
            where.append(f"port {entry.port}")
    return where
