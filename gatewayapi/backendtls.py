"""BackendTLSPolicy attachment (GEP-1897, a Direct policy per GEP-713): the TLS each
targeted Service port gets, and each policy's status. Pure: the waypoint turns the
result into connections (``l7proxy/backendtls.py``), the lab's controller writes the status.

- A policy attaches to the Services of its own namespace that its ``targetRefs`` name; a
  ``sectionName`` narrows it to the Service port of that name, and for that port it wins
  over a policy on the whole Service (the more specific one, GEP-713).
- Two policies on the same (Service, sectionName) conflict: the older wins (creation time,
  then name); the other's entry says ``Accepted=False, reason Conflicted``.
- A missing Service, or a sectionName naming no port of it: ``Accepted=False``,
  ``TargetNotFound``.
- ``ResolvedRefs`` says whether every ``caCertificateRefs`` entry names a ConfigMap of the
  namespace (else ``InvalidKind``) that exists and holds a PEM CA in ``ca.crt`` (else
  ``InvalidCACertificateRef``). With none usable the policy is ``Accepted=False,
  NoValidCACertificate`` but still attached: the spec has connections through it fail
  (5xx), never fall back to plaintext, so its ports carry the refusal.

Each targeted Service is an ancestor (the mesh case: the waypoint connects for every route
to it), as for BackendTrafficPolicy, and so is each Gateway whose routes (HTTPRoute,
GRPCRoute parentRefs) send to that Service (``gateways_by_service``): the Gateway API's
ancestor for a north-south policy, which upstream's conformance tests look up. At most 16
ancestors, as the API bounds them.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from agent.model.backendtls import BackendTLSPolicy, SubjectAltName
from agent.model.core import ConfigMap, Service
from agent.model.gateway import GATEWAY_GROUP
from agent.model.grpcroute import GRPCRoute
from agent.model.httproute import HTTPRoute
from gatewayapi.backendclientcert import ClientCertificate
from gatewayapi.types import CONTROLLER_NAME

StatusDict = dict[str, Any]
PortKey = tuple[str, str, str | None]
"""(namespace, Service name, port name); None: every port without a policy of its own."""
CA_KEY = "ca.crt"
MAX_ANCESTORS = 16
NamespacedName = tuple[str, str]


def gateways_by_service(
    routes: Iterable[HTTPRoute | GRPCRoute],
) -> dict[NamespacedName, list[NamespacedName]]:
    """The Gateways (namespace, name) each Service (namespace, name) is a backend of, through
    a route's parentRefs and backendRefs (namespaces default to the route's), sorted."""
    out: dict[NamespacedName, set[NamespacedName]] = {}
    for route in routes:
        ns = route.metadata.namespace
        gateways = {(p.namespace or ns, p.name) for p in route.spec.parent_refs
                    if p.group == GATEWAY_GROUP and p.kind == "Gateway"}
        if not gateways:
            continue
        for rule in route.spec.rules:
            for ref in rule.backend_refs:
                if ref.group in ("", "core") and ref.kind == "Service":
                    out.setdefault((ref.namespace or ns, ref.name), set()).update(gateways)
    return {svc: sorted(gws) for svc, gws in out.items()}


@dataclass(frozen=True, slots=True)
class UpstreamTLS:
    """What the waypoint must speak to one Service port: ``ca_pem`` None is the system's
    trust store; ``refused`` set: no usable CA, every connection fails with it."""

    policy: str
    hostname: str
    ca_pem: bytes | None
    subject_alt_names: tuple[SubjectAltName, ...] = ()
    refused: str = ""
    client_certificate: ClientCertificate | None = None
    """What the Gateway whose route sent the request presents (GEP-3155); None: none.
    Part of the value, so pools and contexts keep a Gateway's connections to themselves."""


@dataclass(frozen=True, slots=True)
class BackendTLSAttachment:
    ports: dict[PortKey, UpstreamTLS]
    statuses: dict[str, StatusDict]
    """Each policy's ``status`` by "namespace/name"."""

    def lookup(self, namespace: str, service: str, port_name: str | None) -> UpstreamTLS | None:
        """The TLS for a Service port (its own policy, else the whole Service's); None:
        plaintext."""
        if port_name is not None and (namespace, service, port_name) in self.ports:
            return self.ports[(namespace, service, port_name)]
        return self.ports.get((namespace, service, None))


def ca_problem(pem: str) -> str | None:
    """None when ``pem`` holds at least one PEM certificate OpenSSL loads; else why not."""
    if "-----BEGIN CERTIFICATE-----" not in pem:
        return "holds no PEM certificate"
    try:
        ssl.create_default_context(cadata=pem)
    except (ssl.SSLError, ValueError) as exc:
        return f"holds no usable CA certificate ({exc})"
    return None


def _resolve_cas(
    policy: BackendTLSPolicy, config_maps: Mapping[tuple[str, str], ConfigMap]
) -> tuple[bytes | None, list[tuple[str, str]]]:
    """The PEM bundle of the usable refs (None for the system store) and the problems
    as (reason, message)."""
    validation = policy.spec.validation
    if not validation.ca_certificate_refs:
        return None, []
    ns = policy.metadata.namespace
    pems: list[str] = []
    problems: list[tuple[str, str]] = []
    for i, ref in enumerate(validation.ca_certificate_refs):
        where = f"caCertificateRefs[{i}]"
        if ref.group not in ("", "core") or ref.kind != "ConfigMap":
            shown = f"{ref.group}/{ref.kind}" if ref.group else ref.kind
            problems.append(("InvalidKind", f"{where}: unsupported kind {shown} (ConfigMap "
                                            "only)"))
            continue
        config_map = config_maps.get((ns, ref.name))
        if config_map is None:
            problems.append(("InvalidCACertificateRef", f"{where}: ConfigMap {ns}/{ref.name} "
                                                        "not found"))
            continue
        pem = config_map.data.get(CA_KEY)
        problem = f"has no key {CA_KEY}" if pem is None else ca_problem(pem)
        if pem is None or problem is not None:
            problems.append(("InvalidCACertificateRef",
                             f"{where}: ConfigMap {ns}/{ref.name} {problem}"))
            continue
        pems.append(pem if pem.endswith("\n") else pem + "\n")
    return "".join(pems).encode(), problems


def _age(policy: BackendTLSPolicy) -> tuple[datetime, str]:
    created = policy.metadata.creation_timestamp or datetime.max.replace(tzinfo=UTC)
    return created, policy.metadata.name


def attach_backend_tls(
    policies: Iterable[BackendTLSPolicy],
    services: Iterable[Service],
    config_maps: Iterable[ConfigMap],
    previous: Mapping[str, StatusDict],
    now: datetime,
    gateways: Mapping[NamespacedName, Sequence[NamespacedName]] | None = None,
) -> BackendTLSAttachment:
    """``previous``: each policy's status as served (for transition times); ``gateways``:
    the Gateways routing to each Service (``gateways_by_service``), ancestors too."""
    ports_of = {
        (s.metadata.namespace, s.metadata.name): {p.name for p in s.spec.ports} for s in services
    }
    maps = {(c.metadata.namespace, c.metadata.name): c for c in config_maps}
    won: dict[PortKey, UpstreamTLS] = {}
    statuses: dict[str, StatusDict] = {}
    for policy in sorted(policies, key=_age):
        ns, name = policy.metadata.namespace, policy.metadata.name
        pem, problems = _resolve_cas(policy, maps)
        usable = not problems or pem != b""
        refused = "" if usable else "; ".join(m for _, m in problems)
        resolved = (
            (True, "ResolvedRefs", "every caCertificateRef resolved")
            if not problems
            else (False, problems[0][0], "; ".join(m for _, m in problems))
        )
        validation = policy.spec.validation
        tls = UpstreamTLS(f"{ns}/{name}", validation.hostname, pem,
                          validation.subject_alt_names, refused)
        before = _previous(previous.get(f"{ns}/{name}"))
        ancestors = []
        gateway_entries: dict[NamespacedName, list[StatusDict]] = {}
        for ref in policy.spec.target_refs:
            key: PortKey = (ns, ref.name, ref.section_name)
            shown = f"Service {ns}/{ref.name}" + (
                f" port {ref.section_name}" if ref.section_name else "")
            if ref.group not in ("", "core") or ref.kind != "Service":
                accepted = (False, "TargetNotFound", f"unsupported target kind {ref.kind} "
                                                     "(Service only)")
            elif (ns, ref.name) not in ports_of:
                accepted = (False, "TargetNotFound", f"Service {ns}/{ref.name} not found")
            elif ref.section_name is not None and ref.section_name not in ports_of[
                (ns, ref.name)
            ]:
                accepted = (False, "TargetNotFound", f"{shown} not found")
            elif key in won:
                accepted = (False, "Conflicted", f"{shown} already has BackendTLSPolicy "
                                                 f"{won[key].policy}, which is older")
            else:
                won[key] = tls
                accepted = (
                    (True, "Accepted", f"applies to {shown}") if usable
                    else (False, "NoValidCACertificate", f"no usable CA: {refused}")
                )
            old = before.get(("Service", ns, ref.name, ref.section_name), {})
            conditions = [
                _condition("Accepted", old.get("Accepted"), *accepted, policy, now),
                _condition("ResolvedRefs", old.get("ResolvedRefs"), *resolved, policy, now),
            ]
            ancestor_ref: StatusDict = {"group": "", "kind": "Service", "name": ref.name,
                                        "namespace": ns}
            if ref.section_name is not None:
                ancestor_ref["sectionName"] = ref.section_name
            ancestors.append({"ancestorRef": ancestor_ref, "controllerName": CONTROLLER_NAME,
                              "conditions": conditions})
            for gw in (gateways or {}).get((ns, ref.name), ()):
                if gw not in gateway_entries:  # the first target routed there speaks for it
                    was = before.get(("Gateway", *gw, None), {})
                    gateway_entries[gw] = [
                        _condition("Accepted", was.get("Accepted"), *accepted, policy, now),
                        _condition("ResolvedRefs", was.get("ResolvedRefs"), *resolved,
                                   policy, now),
                    ]
        for (gw_ns, gw_name), conditions in gateway_entries.items():
            ancestors.append({
                "ancestorRef": {"group": GATEWAY_GROUP, "kind": "Gateway", "name": gw_name,
                                "namespace": gw_ns},
                "controllerName": CONTROLLER_NAME, "conditions": conditions})
        statuses[f"{ns}/{name}"] = {"ancestors": ancestors[:MAX_ANCESTORS]}
    return BackendTLSAttachment(won, statuses)


AncestorKey = tuple[str, str, str, str | None]


def _previous(status: StatusDict | None) -> dict[AncestorKey, dict[str, StatusDict]]:
    """Our previous conditions by ancestor (kind, namespace, name, sectionName), then by
    type."""
    out: dict[AncestorKey, dict[str, StatusDict]] = {}
    for ancestor in (status or {}).get("ancestors") or ():
        if not isinstance(ancestor, Mapping) or ancestor.get("controllerName") != CONTROLLER_NAME:
            continue
        ref = ancestor.get("ancestorRef") or {}
        key = (str(ref.get("kind", "Gateway")), str(ref.get("namespace")), str(ref.get("name")),
               ref.get("sectionName"))
        out[key] = {
            str(c.get("type")): dict(c)
            for c in ancestor.get("conditions") or ()
            if isinstance(c, Mapping)
        }
    return out


def _condition(
    type_: str, before: StatusDict | None, ok: bool, reason: str, message: str,
    policy: BackendTLSPolicy, now: datetime,
) -> StatusDict:
    value = "True" if ok else "False"
    since = now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if before is not None and before.get("status") == value and before.get("lastTransitionTime"):
        since = str(before["lastTransitionTime"])
    condition: StatusDict = {"type": type_, "status": value, "reason": reason,
                             "message": message, "lastTransitionTime": since}
    if policy.metadata.generation is not None:
        condition["observedGeneration"] = policy.metadata.generation
    return condition


def tls_by_port(
    policies: Iterable[BackendTLSPolicy],
    services: Iterable[Service],
    config_maps: Iterable[ConfigMap],
) -> dict[tuple[str, str, int], UpstreamTLS]:
    """What the waypoint needs: the TLS of each (namespace, Service, port number) that a
    policy covers (routes name backends by port number, policies ports by name)."""
    services = list(services)
    attachment = attach_backend_tls(policies, services, config_maps, {}, datetime.now(UTC))
    out: dict[tuple[str, str, int], UpstreamTLS] = {}
    for service in services:
        ns, name = service.metadata.namespace, service.metadata.name
        for port in service.spec.ports:
            tls = attachment.lookup(ns, name, port.name)
            if tls is not None:
                out[(ns, name, port.port)] = tls
    return out
