"""HTTPRoute rules for one (namespace, host) group of Ingress paths.

Each Ingress path becomes one rule on the HTTPS side (or the only side, without TLS) and one
on the HTTP side; the two differ only where ssl-redirect sends plain HTTP to https.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agent.model.regex import compile_linear, regex_problem
from gatewayapi.ingress.nginx import PREFIX, Canary, Policy, plan_path
from gatewayapi.ingress.report import Finding, Severity
from gatewayapi.ingress.source import Backend, Ingress, IngressPath, ServicePorts

Rule = dict[str, Any]


@dataclass(slots=True)
class Entry:
    """One Ingress path in a host group; ``canary`` is filled by a canary Ingress's path."""

    ingress: Ingress
    policy: Policy
    path: IngressPath
    canary: tuple[Ingress, Canary, Backend] | None = None


@dataclass(slots=True)
class Sides:
    https: list[Rule] = field(default_factory=list)
    http: list[Rule] = field(default_factory=list)


def backend_ref(
    ing: Ingress,
    backend: Backend,
    services: dict[tuple[str, str], ServicePorts],
    out: list[Finding],
) -> dict[str, Any] | None:
    """The backendRef for ``backend``, or None (refused with a finding)."""
    if backend.resource:
        out.append(
            Finding(
                ing.subject, "resource backend", Severity.REFUSED, "HTTPRoute backends are Services"
            )
        )
        return None
    port = backend.port
    if port is None:
        svc = services.get((ing.namespace, backend.service))
        port = svc.ports.get(backend.port_name or "") if svc is not None else None
        if port is None:
            out.append(
                Finding(
                    ing.subject,
                    f"service {backend.service} port name {backend.port_name!r}",
                    Severity.REFUSED,
                    "a backendRef needs a port number; give the Service in the input to resolve "
                    "the name",
                )
            )
            return None
    return {"name": backend.service, "port": port}


def build_rules(
    entries: list[Entry],
    tls_hosts: set[str],
    host: str,
    services: dict[tuple[str, str], ServicePorts],
    out: list[Finding],
) -> Sides:
    sides = Sides()
    app_root: str | None = None
    owners: dict[int, Ingress] = {}  # id(rule) -> the Ingress it came from
    regex_host = any(e.policy.use_regex or e.policy.rewrite_target for e in entries)
    for e in entries:
        ing, p = e.ingress, e.policy
        app_root = app_root or p.app_root
        plan = plan_path(ing, p, e.path.path, e.path.path_type, regex_host, out)
        if plan is None:
            continue
        kind, value = plan.match
        if kind == "RegularExpression" and (problem := regex_problem(value)) is not None:
            out.append(
                Finding(
                    ing.subject,
                    PREFIX + "use-regex",
                    Severity.REFUSED,
                    f"path {e.path.path!r}: {problem}",
                )
            )
            continue
        main = backend_ref(ing, e.path.backend, services, out)
        if main is None:
            continue
        match: dict[str, Any] = {"path": {"type": kind, "value": value}}
        rule: Rule = {"matches": [match]}
        filters: list[dict[str, Any]] = []
        if p.permanent_redirect is not None:
            r = p.permanent_redirect
            redirect: dict[str, Any] = {
                "path": {"type": "ReplaceFullPath", "replaceFullPath": r.path},
                "statusCode": r.code,
            }
            for key, val in (("scheme", r.scheme), ("hostname", r.hostname), ("port", r.port)):
                if val is not None:
                    redirect[key] = val
            filters.append({"type": "RequestRedirect", "requestRedirect": redirect})
        else:
            if plan.rewrite is not None:
                how, target = plan.rewrite
                key = "replaceFullPath" if how == "ReplaceFullPath" else "replacePrefixMatch"
                filters.append(
                    {"type": "URLRewrite", "urlRewrite": {"path": {"type": how, key: target}}}
                )
            if p.cors is not None:
                c = p.cors
                cors: dict[str, Any] = {
                    "allowOrigins": list(c.origins),
                    "allowMethods": list(c.methods),
                    "allowHeaders": list(c.headers),
                    "allowCredentials": c.credentials,
                    "maxAge": c.max_age,
                }
                if c.expose:
                    cors["exposeHeaders"] = list(c.expose)
                filters.append({"type": "CORS", "cors": cors})
            rule["backendRefs"] = [main]
            if p.request_timeout is not None:
                rule["timeouts"] = {"request": f"{int(p.request_timeout.total_seconds())}s"}
        if filters:
            rule["filters"] = filters
        extra = _canary_rules(e, rule, main, services, out) if "backendRefs" in rule else []
        sides.https.extend([*extra, rule])
        owners.update((id(r), ing) for r in (*extra, rule))
        redirects = p.force_ssl_redirect or (p.ssl_redirect and host in tls_hosts)
        if redirects and p.permanent_redirect is None:
            sides.http.append({"matches": [match], "filters": [_to_https()]})
        else:
            sides.http.extend([*extra, rule])
    _check_precedence(owners, sides.https, out)
    if app_root is not None:
        # nginx checks app-root in the server block, before any location, on both ports.
        root = {
            "matches": [{"path": {"type": "Exact", "value": "/"}}],
            "filters": [{"type": "RequestRedirect", "requestRedirect": {
                "path": {"type": "ReplaceFullPath", "replaceFullPath": app_root},
                "statusCode": 302,
            }}],
        }  # fmt: skip
        sides.https.insert(0, root)
        sides.http.insert(0, root)
    return sides


def _to_https() -> dict[str, Any]:
    return {"type": "RequestRedirect", "requestRedirect": {"scheme": "https", "statusCode": 308}}


def _canary_rules(
    e: Entry,
    rule: Rule,
    main: dict[str, Any],
    services: dict[tuple[str, str], ServicePorts],
    out: list[Finding],
) -> list[Rule]:
    """Weights on ``rule`` (in place) and the header rules ahead of it."""
    if e.canary is None:
        return []
    canary_ing, c, backend = e.canary
    ref = backend_ref(canary_ing, backend, services, out)
    if ref is None:
        return []
    if c.weight is not None:
        rule["backendRefs"] = [{**main, "weight": c.total - c.weight}, {**ref, "weight": c.weight}]
    extra: list[Rule] = []
    if c.header is not None:
        path = rule["matches"][0]["path"]

        def by_header(value: str, target: dict[str, Any]) -> Rule:
            return {
                **{k: v for k, v in rule.items() if k != "backendRefs"},
                "matches": [{"path": path, "headers": [{"name": c.header, "value": value}]}],
                "backendRefs": [target],
            }

        extra.append(by_header(c.header_value or "always", ref))
        if c.header_value is None:
            extra.append(by_header("never", main))
    return extra


def _check_precedence(owners: dict[int, Ingress], rules: list[Rule], out: list[Finding]) -> None:
    """Tulle ranks RegularExpression paths before every PathPrefix (gatewayapi/precedence.py);
    nginx picks the longest location. A prefix that a regex of the same host also matches
    is reached differently: report it rather than convert silently."""
    regexes = [
        (m["path"]["value"], compile_linear(m["path"]["value"]))
        for r in rules
        for m in r["matches"]
        if m["path"]["type"] == "RegularExpression"
    ]
    for r in rules:
        for m in r["matches"]:
            if m["path"]["type"] != "PathPrefix":
                continue
            value = m["path"]["value"]
            for pattern, compiled in regexes:
                if compiled.fullmatch(value) or compiled.fullmatch(value.rstrip("/") + "/x"):
                    subject = owners[id(r)].subject
                    out.append(
                        Finding(
                            subject,
                            f"path {value!r}",
                            Severity.APPROXIMATED,
                            f"RegularExpression {pattern!r} on the same host ranks before "
                            "PathPrefix in Tulle, so it takes requests that nginx sends to "
                            "this (longer) path",
                        )
                    )
                    break
