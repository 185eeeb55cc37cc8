"""ingress-nginx annotations: what each one means, as Gateway API terms, or why it cannot.

Semantics follow ingress-nginx (and ingress2gateway's reading of it): paths become regular
expressions with use-regex or rewrite-target, matched case-insensitively from the start of
the path (nginx ``location ~* "^..."``); ssl-redirect is on by default for hosts with TLS and
answers 308; canary Ingresses add a second backend to the main Ingress's rule, by weight
(canary-weight of canary-weight-total) and/or by header ("always"/"never", or the exact
canary-by-header-value). Annotations this module does not know are reported as refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

from gatewayapi.ingress.report import Finding, Severity
from gatewayapi.ingress.source import Ingress

PREFIX = "nginx.ingress.kubernetes.io/"
_TRUE = ("true", "1", "t", "True", "TRUE")
_FALSE = ("false", "0", "f", "False", "FALSE")
_REDIRECT_CODES = (301, 302, 303, 307, 308)

CORS_DEFAULT_METHODS = ("GET", "PUT", "POST", "DELETE", "PATCH", "OPTIONS")
CORS_DEFAULT_HEADERS = (
    "DNT", "Keep-Alive", "User-Agent", "X-Requested-With", "If-Modified-Since",
    "Cache-Control", "Content-Type", "Range", "Authorization",
)  # fmt: skip
CORS_DEFAULT_MAX_AGE = 1728000

_CANARY_KEYS = {
    "canary", "canary-weight", "canary-weight-total", "canary-by-header",
    "canary-by-header-value",
}  # fmt: skip
_HANDLED = _CANARY_KEYS | {
    "rewrite-target", "ssl-redirect", "force-ssl-redirect", "backend-protocol", "enable-cors",
    "cors-allow-origin", "cors-allow-methods", "cors-allow-headers", "cors-expose-headers",
    "cors-allow-credentials", "cors-max-age", "proxy-connect-timeout", "proxy-send-timeout",
    "proxy-read-timeout", "use-regex", "app-root", "permanent-redirect",
    "permanent-redirect-code",
}  # fmt: skip
_KNOWN_REFUSALS = {
    "canary-by-header-pattern": "header regex canaries: refused, as ingress2gateway does",
    "canary-by-cookie": "Gateway API matches no cookies",
    "configuration-snippet": "raw nginx configuration has no Gateway API form",
    "server-snippet": "raw nginx configuration has no Gateway API form",
    "affinity": "session affinity is not converted (sessionPersistence is experimental)",
    "whitelist-source-range": "client address filters are not in HTTPRoute",
    "denylist-source-range": "client address filters are not in HTTPRoute",
    "limit-rps": "rate limits are not in HTTPRoute",
    "limit-connections": "rate limits are not in HTTPRoute",
    "auth-url": "external authentication is not in HTTPRoute",
    "auth-type": "authentication is not in HTTPRoute",
    "proxy-body-size": "body size limits are not in HTTPRoute",
    "temporal-redirect": "not converted yet by tulle convert",
}  # fmt: skip

# `<prefix>(/|$)(.*)` with target `<new>$2`: the one capture shape URLRewrite can say
# (ReplacePrefixMatch); ingress-nginx documents exactly this form for rewrite-target.
_TAIL_CAPTURE = re.compile(r"^(?P<prefix>/[^()\[\]{}*+?|^$\\.]*?)\(/\|\$\)\(\.\*\)$")
_REGEX_CHARS = re.compile(r"[()\[\]{}*+?|^$\\.]")


@dataclass(frozen=True, slots=True)
class Canary:
    weight: int | None  # None: no canary-weight (header only)
    total: int
    header: str | None
    header_value: str | None


@dataclass(frozen=True, slots=True)
class Cors:
    origins: tuple[str, ...]
    methods: tuple[str, ...]
    headers: tuple[str, ...]
    expose: tuple[str, ...]
    credentials: bool
    max_age: int


@dataclass(frozen=True, slots=True)
class Redirect:
    scheme: str | None
    hostname: str | None
    port: int | None
    path: str
    code: int


@dataclass(slots=True)
class Policy:
    """What one Ingress's annotations ask for, in Gateway API terms."""

    use_regex: bool = False
    rewrite_target: str | None = None
    ssl_redirect: bool = True
    force_ssl_redirect: bool = False
    cors: Cors | None = None
    request_timeout: timedelta | None = None
    app_root: str | None = None
    permanent_redirect: Redirect | None = None
    canary: Canary | None = None


def _flag(ing: Ingress, key: str, default: bool, out: list[Finding]) -> bool:
    value = ing.annotations.get(PREFIX + key)
    if value is None:
        return default
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    out.append(_refuse(ing, key, f"value {value!r} is not a boolean; ignored"))
    return default


def _refuse(ing: Ingress, key: str, reason: str) -> Finding:
    return Finding(ing.subject, PREFIX + key, Severity.REFUSED, reason)


def _int(ing: Ingress, key: str, out: list[Finding], low: int, high: int) -> int | None:
    value = ing.annotations.get(PREFIX + key)
    if value is None:
        return None
    if not value.strip().isdigit() or not low <= int(value) <= high:
        out.append(_refuse(ing, key, f"value {value!r} is not an integer {low}-{high}; ignored"))
        return None
    return int(value)


def _csv(value: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in value.split(",") if item.strip())


def read_policy(ing: Ingress, out: list[Finding]) -> Policy:
    """Interpret ``ing``'s ingress-nginx annotations; append findings to ``out``."""
    p = Policy()
    a = ing.annotations
    p.canary = _canary(ing, out) if _flag(ing, "canary", False, out) else None
    for key in sorted(a):
        if not key.startswith(PREFIX):
            continue
        short = key[len(PREFIX) :]
        if short in _KNOWN_REFUSALS:
            out.append(_refuse(ing, short, _KNOWN_REFUSALS[short]))
        elif short not in _HANDLED:
            out.append(_refuse(ing, short, "unknown to tulle convert; not converted"))
        elif p.canary is not None and short not in _CANARY_KEYS:
            # ingress-nginx applies a canary Ingress's other annotations nowhere: the main
            # Ingress's annotations govern the location.
            out.append(
                Finding(
                    ing.subject, key, Severity.NOTE, "ignored on a canary Ingress, as nginx does"
                )
            )
    if p.canary is not None:
        return p
    p.use_regex = _flag(ing, "use-regex", False, out)
    p.rewrite_target = a.get(PREFIX + "rewrite-target") or None
    p.ssl_redirect = _flag(ing, "ssl-redirect", True, out)
    p.force_ssl_redirect = _flag(ing, "force-ssl-redirect", False, out)
    if _flag(ing, "enable-cors", False, out):
        p.cors = _cors(ing, out)
    _timeouts(ing, p, out)
    _protocol(ing, out)
    if (root := a.get(PREFIX + "app-root")) is not None:
        if root.startswith("/") and not _REGEX_CHARS.search(root.replace(".", "")):
            p.app_root = root
            out.append(
                Finding(
                    ing.subject,
                    PREFIX + "app-root",
                    Severity.APPROXIMATED,
                    "RequestRedirect keeps a query string on '/'; nginx's app-root redirect "
                    "drops it",
                )
            )
        else:
            out.append(_refuse(ing, "app-root", f"{root!r} is not an absolute path; ignored"))
    if (url := a.get(PREFIX + "permanent-redirect")) is not None:
        p.permanent_redirect = _permanent(ing, url, out)
    return p


def _canary(ing: Ingress, out: list[Finding]) -> Canary:
    total = _int(ing, "canary-weight-total", out, 1, 1_000_000) or 100
    weight = _int(ing, "canary-weight", out, 0, 1_000_000)
    if weight is not None and weight > total:
        out.append(_refuse(ing, "canary-weight", f"{weight} exceeds the total {total}; ignored"))
        weight = None
    header = ing.annotations.get(PREFIX + "canary-by-header") or None
    value = ing.annotations.get(PREFIX + "canary-by-header-value") or None
    if value is not None and header is None:
        out.append(_refuse(ing, "canary-by-header-value", "needs canary-by-header; ignored"))
        value = None
    return Canary(weight, total, header, value)


def _cors(ing: Ingress, out: list[Finding]) -> Cors | None:
    a = ing.annotations
    origins = _csv(a.get(PREFIX + "cors-allow-origin", "*")) or ("*",)
    methods = tuple(m.upper() for m in _csv(a.get(PREFIX + "cors-allow-methods", "")))
    headers = _csv(a.get(PREFIX + "cors-allow-headers", ""))
    max_age = _int(ing, "cors-max-age", out, 1, 2**31 - 1)
    return Cors(
        origins=origins,
        methods=methods or CORS_DEFAULT_METHODS,
        headers=headers or CORS_DEFAULT_HEADERS,
        expose=_csv(a.get(PREFIX + "cors-expose-headers", "")),
        credentials=_flag(ing, "cors-allow-credentials", True, out),
        max_age=CORS_DEFAULT_MAX_AGE if max_age is None else max_age,
    )


def _seconds(ing: Ingress, key: str, out: list[Finding]) -> int | None:
    return _int(ing, key, out, 1, 86_400)


def _timeouts(ing: Ingress, p: Policy, out: list[Finding]) -> None:
    read = _seconds(ing, "proxy-read-timeout", out)
    if read is not None:
        p.request_timeout = timedelta(seconds=read)
        out.append(
            Finding(
                ing.subject,
                PREFIX + "proxy-read-timeout",
                Severity.APPROXIMATED,
                "became timeouts.request: nginx bounds the wait between two reads from the "
                "backend, Gateway API bounds the whole request, so slow streaming responses "
                "that nginx lets through are cut",
            )
        )
    for key, why in (
        ("proxy-connect-timeout", "HTTPRoute has no connect timeout"),
        ("proxy-send-timeout", "HTTPRoute has no timeout between two writes to the backend"),
    ):
        if _seconds(ing, key, out) is not None:
            out.append(_refuse(ing, key, why))


def _protocol(ing: Ingress, out: list[Finding]) -> None:
    value = ing.annotations.get(PREFIX + "backend-protocol")
    if value is None or value.upper() == "HTTP":
        return
    reasons = {
        "HTTPS": "upstream TLS needs a BackendTLSPolicy, which always verifies the backend's "
        "certificate against a CA and a hostname; nginx does not verify (proxy-ssl-verify is "
        "off by default), so write the policy with the backend's CA and name by hand",
        "GRPC": "gRPC backends need a GRPCRoute (or Service appProtocol kubernetes.io/h2c), "
        "which tulle convert does not write",
        "GRPCS": "gRPC over TLS needs a GRPCRoute and a BackendTLSPolicy",
        "AUTO_HTTP": "protocol sniffing to the backend has no Gateway API form",
        "FCGI": "FastCGI has no Gateway API form",
    }
    out.append(
        _refuse(ing, "backend-protocol", reasons.get(value.upper(), f"unknown protocol {value!r}"))
    )


def _permanent(ing: Ingress, url: str, out: list[Finding]) -> Redirect | None:
    code = _int(ing, "permanent-redirect-code", out, 100, 599) or 301
    if code not in _REDIRECT_CODES:
        out.append(
            _refuse(
                ing,
                "permanent-redirect-code",
                f"{code} is not a redirect code Gateway API has (301, 302, 303, 307, 308)",
            )
        )
        code = 301
    parts = urlsplit(url)
    if parts.query or parts.fragment:
        out.append(
            _refuse(
                ing,
                "permanent-redirect",
                "a target with a query or fragment has no RequestRedirect form",
            )
        )
        return None
    if parts.scheme not in ("http", "https", "") or (parts.scheme and not parts.hostname):
        out.append(_refuse(ing, "permanent-redirect", f"{url!r} is not an http(s) URL or path"))
        return None
    out.append(
        Finding(
            ing.subject,
            PREFIX + "permanent-redirect",
            Severity.APPROXIMATED,
            "RequestRedirect keeps the request's query string; nginx's redirect to a fixed "
            "URL drops it",
        )
    )
    return Redirect(
        scheme=parts.scheme or None,
        hostname=parts.hostname,
        port=parts.port,
        path=parts.path or "/",
        code=code,
    )


@dataclass(frozen=True, slots=True)
class PathPlan:
    """How one Ingress path matches and rewrites: ``match`` is (type, value) in Gateway API
    terms; ``rewrite`` is ("ReplaceFullPath"|"ReplacePrefixMatch", value) or None."""

    match: tuple[str, str]
    rewrite: tuple[str, str] | None


def plan_path(
    ing: Ingress, p: Policy, path: str, path_type: str, regex_host: bool, out: list[Finding]
) -> PathPlan | None:
    """The match (and rewrite) for one path, or None (refused, with a finding).

    ``regex_host``: some Ingress on this host has use-regex or rewrite-target, and nginx
    then makes every path of the host a regex location (across Ingresses)."""
    target = p.rewrite_target
    regex = p.use_regex or target is not None or regex_host
    if target is not None and "$" in target:
        tail = _TAIL_CAPTURE.match(path)
        if tail is None or not re.fullmatch(r"[^$]*\$2", target):
            out.append(
                _refuse(
                    ing,
                    "rewrite-target",
                    f"path {path!r} -> {target!r}: URLRewrite has no regex substitution; only "
                    "'<prefix>(/|$)(.*)' with '<new>$2' is expressible",
                )
            )
            return None
        prefix, new = tail.group("prefix") or "/", target[:-2]
        if not new.startswith("/"):
            new = "/" + new
        out.append(_case_note(ing, "rewrite-target", path))
        return PathPlan(("PathPrefix", prefix), ("ReplacePrefixMatch", new.rstrip("/") or "/"))
    if regex and path_type != "Exact":
        # ingress-nginx: `location ~* "^<path>"`: case-insensitive, anchored at the start
        # only. RE2 matches the whole path, so ".*" keeps the open end.
        key = "rewrite-target" if target is not None and not p.use_regex else "use-regex"
        if target is None and not p.use_regex:
            key = "use-regex (of another Ingress on this host)"
        out.append(
            Finding(
                ing.subject,
                PREFIX + key,
                Severity.NOTE,
                f"path {path!r} became RegularExpression '(?i){path}.*': nginx uses PCRE, Tulle "
                "RE2 (no backreferences or lookarounds; refused below if used)",
            )
        )
        plan = PathPlan(("RegularExpression", f"(?i){path}.*"), None)
    else:
        kind = {"Exact": "Exact", "Prefix": "PathPrefix"}.get(path_type, "PathPrefix")
        if path_type == "ImplementationSpecific":
            out.append(
                Finding(
                    ing.subject,
                    f"path {path!r} (ImplementationSpecific)",
                    Severity.NOTE,
                    "mapped to PathPrefix, as ingress2gateway does for ingress-nginx",
                )
            )
        plan = PathPlan((kind, path), None)
    if target is not None:
        plan = PathPlan(plan.match, ("ReplaceFullPath", target))
    return plan


def _case_note(ing: Ingress, key: str, path: str) -> Finding:
    return Finding(
        ing.subject,
        PREFIX + key,
        Severity.APPROXIMATED,
        f"path {path!r} became PathPrefix with ReplacePrefixMatch (the only match type "
        "prefix rewrites allow): nginx matches it case-insensitively, Gateway API exactly",
    )
