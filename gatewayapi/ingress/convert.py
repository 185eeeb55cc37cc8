"""Ingress (+ IngressClass) -> Gateway, HTTPRoutes and ReferenceGrants, with a report.

One Gateway per IngressClass (named after the class, GatewayClass ``tulle`` by default), in
the Ingresses' namespace when they share one, else in ``gateway_namespace``. Listeners: one
HTTP listener per host (plus ``http`` without hostname for host-less rules and
defaultBackends) and one HTTPS listener per TLS host with its Secret. One HTTPRoute per
(namespace, host) merges that host's paths from every Ingress of the class, in the Ingress's
namespace, as ingress2gateway does; a second ``-http`` route carries the ssl-redirect side
when it differs. Secrets in another namespace than the Gateway get a ReferenceGrant.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gatewayapi.ingress.nginx import PREFIX, read_policy
from gatewayapi.ingress.report import Finding, Severity, is_exact
from gatewayapi.ingress.routes import Entry, Rule, build_rules
from gatewayapi.ingress.source import (
    INGRESS_API,
    Ingress,
    IngressClass,
    IngressError,
    IngressPath,
    ServicePorts,
    read_ingress,
    read_ingress_class,
    read_service_ports,
)

GATEWAY_API = "gateway.networking.k8s.io/v1"
GRANT_API = "gateway.networking.k8s.io/v1beta1"
DEFAULT_GATEWAY_CLASS = "tulle"
UNCLASSED_GATEWAY = "ingress"
MAX_RULES = 16  # HTTPRoute spec.rules maxItems


@dataclass(slots=True)
class Conversion:
    objects: list[dict[str, Any]] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    @property
    def exact(self) -> bool:
        return is_exact(self.findings)


def convert(
    documents: Iterable[Mapping[str, Any]],
    gateway_class: str = DEFAULT_GATEWAY_CLASS,
    gateway_namespace: str = "default",
) -> Conversion:
    """Convert the Ingresses among ``documents``. IngressClasses pick the default class;
    Services resolve named backend ports; other kinds are skipped with a note.
    Raises :class:`IngressError` for malformed Ingress-side objects."""
    result = Conversion()
    ingresses: list[Ingress] = []
    classes: list[IngressClass] = []
    services: dict[tuple[str, str], ServicePorts] = {}
    for doc in documents:
        kind, api = doc.get("kind"), doc.get("apiVersion")
        if kind == "Ingress":
            ingresses.append(read_ingress(doc))
        elif kind == "IngressClass" and api == INGRESS_API:
            classes.append(read_ingress_class(doc))
        elif kind == "Service" and api == "v1":
            svc = read_service_ports(doc)
            services[(svc.namespace, svc.name)] = svc
        else:
            meta = doc.get("metadata")
            name = meta.get("name") if isinstance(meta, Mapping) else None
            result.findings.append(
                Finding(f"{kind} {name}", "kind", Severity.NOTE, "not an Ingress; skipped")
            )
    seen: set[tuple[str, str]] = set()
    for ing in ingresses:
        if (ing.namespace, ing.name) in seen:
            raise IngressError(f"{ing.subject}: given twice")
        seen.add((ing.namespace, ing.name))
    defaults = [c.name for c in classes if c.is_default]
    if len(defaults) > 1:
        raise IngressError(f"IngressClasses {', '.join(defaults)}: more than one is the default")
    by_class: dict[str, list[Ingress]] = {}
    for ing in sorted(ingresses, key=lambda i: (i.namespace, i.name)):
        name = ing.class_name or (defaults[0] if defaults else "")
        if not name:
            why = (
                f"no class and no default IngressClass in the input: converted onto Gateway "
                f"{UNCLASSED_GATEWAY!r} (ingress-nginx serves such Ingresses only with "
                "--watch-ingress-without-class)"
            )
            result.findings.append(
                Finding(ing.subject, "spec.ingressClassName", Severity.NOTE, why)
            )
        by_class.setdefault(name, []).append(ing)
    for class_name, members in sorted(by_class.items()):
        _convert_class(class_name, members, services, gateway_class, gateway_namespace, result)
    return result


def _slug(host: str) -> str:
    return host.replace("*", "wildcard") if host else "all-hosts"


def _convert_class(
    class_name: str,
    members: list[Ingress],
    services: dict[tuple[str, str], ServicePorts],
    gateway_class: str,
    fallback_ns: str,
    result: Conversion,
) -> None:
    out = result.findings
    gw_name = class_name or UNCLASSED_GATEWAY
    namespaces = {i.namespace for i in members}
    gw_ns = next(iter(namespaces)) if len(namespaces) == 1 else fallback_ns
    groups: dict[tuple[str, str], list[Entry]] = {}
    certs: dict[str, tuple[str, str, Ingress]] = {}  # host -> (namespace, secret, owner)
    tls_hosts_of: dict[tuple[str, str], set[str]] = {}
    canaries: list[tuple[Ingress, Any]] = []
    for ing in members:
        policy = read_policy(ing, out)
        if policy.canary is not None:
            canaries.append((ing, policy.canary))
            continue
        tls_hosts_of[(ing.namespace, ing.name)] = {h for t in ing.tls for h in t.hosts}
        for rule in ing.rules:
            group = groups.setdefault((ing.namespace, rule.host), [])
            group.extend(Entry(ing, policy, path) for path in rule.paths)
        if ing.default_backend is not None:
            path = IngressPath("/", "Prefix", ing.default_backend)
            groups.setdefault((ing.namespace, ""), []).append(Entry(ing, policy, path))
        _collect_certs(ing, certs, out)
    for ing, canary in canaries:
        _attach_canary(ing, canary, groups, out)
    listeners: dict[str, dict[str, Any]] = {}
    routes: list[dict[str, Any]] = []
    for (ns, host), entries in sorted(groups.items()):
        tls = {h for e in entries for h in tls_hosts_of[(e.ingress.namespace, e.ingress.name)]}
        tls &= set(certs)
        sides = build_rules(entries, tls, host, services, out)
        http = _listener(listeners, "http", host, None, gw_ns)
        https = _listener(listeners, "https", host, certs[host], gw_ns) if host in tls else None
        base = f"{entries[0].ingress.name}-{_slug(host)}"
        if https is None:
            routes += _routes(base, ns, host, sides.http, [http], gw_name, gw_ns, out)
        elif sides.http == sides.https:
            routes += _routes(base, ns, host, sides.https, [https, http], gw_name, gw_ns, out)
        else:
            routes += _routes(base, ns, host, sides.https, [https], gw_name, gw_ns, out)
            routes += _routes(f"{base}-http", ns, host, sides.http, [http], gw_name, gw_ns, out)
    if not listeners:
        return
    route_ns = sorted({r["metadata"]["namespace"] for r in routes})
    if route_ns != [gw_ns] and route_ns:
        allowed = {"namespaces": {"from": "Selector", "selector": {"matchExpressions": [
            {"key": "kubernetes.io/metadata.name", "operator": "In", "values": route_ns},
        ]}}}  # fmt: skip
        for listener in listeners.values():
            listener["allowedRoutes"] = allowed
    gateway = {
        "apiVersion": GATEWAY_API,
        "kind": "Gateway",
        "metadata": {"name": gw_name, "namespace": gw_ns},
        "spec": {"gatewayClassName": gateway_class, "listeners": list(listeners.values())},
    }
    # Deep copies: rules share match dicts, and a YAML writer would turn those into aliases.
    result.objects += json.loads(json.dumps([gateway, *routes, *_grants(certs, gw_name, gw_ns)]))


def _collect_certs(
    ing: Ingress, certs: dict[str, tuple[str, str, Ingress]], out: list[Finding]
) -> None:
    for i, entry in enumerate(ing.tls):
        where = f"spec.tls[{i}]"
        if not entry.hosts:
            out.append(
                Finding(
                    ing.subject,
                    where,
                    Severity.REFUSED,
                    "TLS without hosts (nginx's default server) has no listener hostname",
                )
            )
        if entry.secret_name is None:
            out.append(
                Finding(
                    ing.subject,
                    f"{where}.secretName",
                    Severity.REFUSED,
                    "no Secret: nginx serves its default certificate; "
                    "an HTTPS listener needs certificateRefs",
                )
            )
            continue
        for host in entry.hosts:
            have = certs.get(host)
            if have is not None and have[:2] != (ing.namespace, entry.secret_name):
                out.append(
                    Finding(
                        ing.subject,
                        f"{where} host {host}",
                        Severity.REFUSED,
                        f"{host} already has certificate {have[0]}/{have[1]} from "
                        f"{have[2].subject}; one listener has one certificate set",
                    )
                )
                continue
            certs[host] = (ing.namespace, entry.secret_name, ing)


def _attach_canary(
    ing: Ingress, canary: Any, groups: dict[tuple[str, str], list[Entry]], out: list[Finding]
) -> None:
    for rule in ing.rules:
        for path in rule.paths:
            mains = [
                e
                for e in groups.get((ing.namespace, rule.host), [])
                if (e.path.path, e.path.path_type) == (path.path, path.path_type)
            ]
            if not mains:
                out.append(
                    Finding(
                        ing.subject,
                        f"{PREFIX}canary host {rule.host or '*'} path {path.path}",
                        Severity.REFUSED,
                        "no main Ingress serves this host and path; "
                        "a canary only splits an existing path",
                    )
                )
            elif mains[0].canary is not None:
                out.append(
                    Finding(
                        ing.subject,
                        f"{PREFIX}canary host {rule.host or '*'} path {path.path}",
                        Severity.REFUSED,
                        f"{mains[0].canary[0].subject} is already this path's canary",
                    )
                )
            else:
                mains[0].canary = (ing, canary, path.backend)
    if ing.default_backend is not None:
        out.append(
            Finding(
                ing.subject,
                "spec.defaultBackend",
                Severity.REFUSED,
                "a canary's defaultBackend is not split",
            )
        )


def _listener(
    listeners: dict[str, dict[str, Any]],
    scheme: str,
    host: str,
    cert: tuple[str, str, Ingress] | None,
    gw_ns: str,
) -> str:
    name = f"{scheme}-{_slug(host)}" if host else scheme
    if name not in listeners:
        listener: dict[str, Any] = {
            "name": name,
            "port": 443 if scheme == "https" else 80,
            "protocol": scheme.upper(),
        }
        if host:
            listener["hostname"] = host
        if cert is not None:
            ref: dict[str, Any] = {"kind": "Secret", "name": cert[1]}
            if cert[0] != gw_ns:
                ref["namespace"] = cert[0]
            listener["tls"] = {"mode": "Terminate", "certificateRefs": [ref]}
        listeners[name] = listener
    return name


def _routes(
    base: str,
    ns: str,
    host: str,
    rules: list[Rule],
    sections: list[str],
    gw_name: str,
    gw_ns: str,
    out: list[Finding],
) -> list[dict[str, Any]]:
    """HTTPRoutes for ``rules``; over 16 rules split into ``base``, ``base-2``... (precedence
    is computed across routes of one listener, so the split changes nothing)."""
    if not rules:
        return []
    parents = []
    for section in sections:
        parent = {"name": gw_name, "sectionName": section}
        if ns != gw_ns:
            parent["namespace"] = gw_ns
        parents.append(parent)
    chunks = [rules[i : i + MAX_RULES] for i in range(0, len(rules), MAX_RULES)]
    routes = []
    for n, chunk in enumerate(chunks):
        spec: dict[str, Any] = {"parentRefs": parents, "rules": chunk}
        if host:
            spec["hostnames"] = [host]
        routes.append({
            "apiVersion": GATEWAY_API,
            "kind": "HTTPRoute",
            "metadata": {"name": base if n == 0 else f"{base}-{n + 1}", "namespace": ns},
            "spec": spec,
        })  # fmt: skip
    return routes


def _grants(
    certs: dict[str, tuple[str, str, Ingress]], gw_name: str, gw_ns: str
) -> list[dict[str, Any]]:
    by_ns: dict[str, set[str]] = {}
    for ns, secret, _ in certs.values():
        if ns != gw_ns:
            by_ns.setdefault(ns, set()).add(secret)
    return [
        {
            "apiVersion": GRANT_API,
            "kind": "ReferenceGrant",
            "metadata": {"name": f"{gw_name}-{gw_ns}-tls", "namespace": ns},
            "spec": {
                "from": [
                    {"group": "gateway.networking.k8s.io", "kind": "Gateway", "namespace": gw_ns}
                ],
                "to": [{"group": "", "kind": "Secret", "name": s} for s in sorted(secrets)],
            },
        }
        for ns, secrets in sorted(by_ns.items())
    ]
