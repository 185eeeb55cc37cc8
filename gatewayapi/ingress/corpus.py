"""The request corpus `tulle convert --verify` replays against the Ingress and the converted
Gateway (pure).

Generated from the Ingresses themselves: every path of every host as written, and the
requests just outside it, where the two APIs are most likely to disagree (a sibling prefix
``/foo`` vs ``/foobar``, a trailing slash, one level deeper, another case); every host also
in another case and, for a wildcard host, one and two labels under it; a host no rule names
(the defaultBackend's); HTTPS with SNI for TLS hosts. Requests the ingress-nginx annotations
make interesting come too: a canary header with and without it, a CORS preflight with an
Origin, ``/`` for app-root. Users add their own from a YAML or JSON file
(:func:`read_requests`).

Each probe records the annotations whose effect it exercises (``annotations``): the
Ingress side is Tulle's Ingress engine, which implements no ingress-nginx annotation, so a
probe that depends on one cannot be checked by comparison (``compare.py`` says so).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gatewayapi.ingress.nginx import PREFIX
from gatewayapi.ingress.source import Ingress, IngressError, read_ingress

MAX_PROBES = 2000
"""A bound on one run's requests (generated plus user-supplied)."""
UNLISTED_HOST = "unlisted.verify.invalid"
UNMATCHED_PATH = "/verify-unmatched"
SCHEMES = ("http", "https")
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})


@dataclass(frozen=True, slots=True)
class Probe:
    """One request: ``why`` says what it exercises; ``annotations`` the ingress-nginx
    annotations (keys) whose effect it depends on."""

    method: str
    scheme: str
    host: str
    path: str
    headers: tuple[tuple[str, str], ...] = ()
    why: str = ""
    annotations: tuple[str, ...] = field(default=())
    expect: tuple[tuple[str, str], ...] = ()
    """What ingress-nginx answers, when the only annotations the probe depends on are ones
    whose answer is documented and fixed (:data:`EXPECTED`, :data:`MOVED`): compared with
    the Gateway."""

    @property
    def key(self) -> tuple[str, str, str, str, tuple[tuple[str, str], ...]]:
        return (self.method, self.scheme, self.host, self.path, self.headers)

    def __str__(self) -> str:
        extra = "".join(f" {k}: {v}" for k, v in self.headers)
        return f"{self.method} {self.scheme}://{self.host}{self.path}{extra}"


def ingresses_of(documents: Iterable[Mapping[str, Any]]) -> list[Ingress]:
    return [read_ingress(d) for d in documents if d.get("kind") == "Ingress"]


def path_variants(path: str, path_type: str) -> list[tuple[str, str]]:
    """``path`` and the paths just outside it, each with what it checks."""
    base = path or "/"
    stem = base.rstrip("/")
    out = [(base, f"{path_type} {base} as written")]
    if stem:
        out.append((stem + "/", "trailing slash"))
        out.append((stem + "/deeper", "one level deeper"))
        out.append((stem + "x", "sibling prefix"))
        if stem != stem.upper():
            out.append((stem.upper(), "other case"))
    else:
        out.append(("/any/deeper", "one level deeper"))
    if path_type == "Exact" and stem and base.endswith("/"):
        out.append((stem, "without its trailing slash"))
    return out


def host_variants(host: str) -> list[tuple[str, str]]:
    if not host:
        return [(UNLISTED_HOST, "a rule without host")]
    if host.startswith("*."):
        parent = host[2:]
        return [
            (f"one.{parent}", "one label under the wildcard"),
            (f"two.one.{parent}", "two labels under the wildcard"),
            (parent, "the wildcard's parent domain"),
        ]
    out = [(host, "host as written")]
    if host != host.upper():
        out.append((host.upper(), "host in another case"))
    return out


def _behaviour_annotations(ing: Ingress) -> set[str]:
    """The ingress-nginx annotations of ``ing`` that change what a request gets."""
    out = set()
    for key, value in ing.annotations.items():
        if not key.startswith(PREFIX):
            continue
        name = key[len(PREFIX):]
        if name == "backend-protocol" and value.upper() == "HTTP":
            continue
        if name == "ssl-redirect" and value == "false":
            continue
        out.add(key)
    return out


def _ssl_redirect_default(ing: Ingress, host: str) -> bool:
    """nginx redirects plain HTTP to HTTPS for a TLS host unless told not to."""
    if ing.annotations.get(PREFIX + "ssl-redirect") == "false":
        return False
    return any(host in t.hosts for t in ing.tls)


def generate(ingresses: Iterable[Ingress]) -> list[Probe]:
    """The corpus for ``ingresses``: deterministic, without duplicates, at most
    :data:`MAX_PROBES`."""
    ingresses = list(ingresses)
    by_host: dict[str, list[Ingress]] = {}
    tls_hosts: set[str] = set()
    for ing in ingresses:
        for rule in ing.rules:
            by_host.setdefault(rule.host, []).append(ing)
        if ing.default_backend is not None:
            by_host.setdefault("", []).append(ing)
        tls_hosts.update(h for t in ing.tls for h in t.hosts)
    probes: dict[tuple[Any, ...], Probe] = {}

    def add(probe: Probe) -> None:
        probes.setdefault(probe.key, probe)

    for host, owners in sorted(by_host.items()):
        marks = set().union(*(_behaviour_annotations(i) for i in owners))
        paths = sorted({(p.path, p.path_type) for i in owners for r in i.rules
                        if r.host == host for p in r.paths})
        if host == "":
            paths.append(("/", "Prefix"))
        schemes = ["http", "https"] if host in tls_hosts else ["http"]
        for name, host_why in host_variants(host):
            for scheme in schemes:
                for raw, path_type in paths:
                    for path, why in path_variants(raw, path_type):
                        add(Probe("GET", scheme, name, path, (), f"{host_why}; {why}"))
                add(Probe("GET", scheme, name, UNMATCHED_PATH, (),
                          f"{host_why}; a path no rule names"))
                for key in sorted(marks):
                    for probe in _annotation_probes(key, owners, scheme, name):
                        add(probe)
    add(Probe("GET", "http", UNLISTED_HOST, "/", (), "a host no rule names"))
    return [mark(p, ingresses) for p in list(probes.values())[:MAX_PROBES]]


def _annotation_probes(key: str, owners: list[Ingress], scheme: str, host: str) -> list[Probe]:
    """Requests an annotation makes interesting (besides the path variants)."""
    name = key[len(PREFIX):]
    paths = sorted({p.path or "/" for i in owners for r in i.rules for p in r.paths
                    if key in i.annotations})
    out = []
    if name == "canary-by-header":
        header = next(i.annotations[key] for i in owners if key in i.annotations)
        value = next((i.annotations.get(PREFIX + "canary-by-header-value") for i in owners
                      if key in i.annotations), None)
        for path in paths:
            for v in ([value] if value else ["always", "never"]):
                out.append(Probe("GET", scheme, host, path, ((header, v),),
                                 f"canary header {header}: {v}"))
    elif name == "enable-cors":
        allowed = next((i.annotations.get(PREFIX + "cors-allow-origin", "") for i in owners
                        if key in i.annotations), "")
        origin = allowed.split(",")[0].strip()  # an allowed one: the preflight succeeds
        if not origin or "*" in origin:
            origin = "https://origin.verify.invalid"
        for path in paths:
            out.append(Probe("OPTIONS", scheme, host, path, (
                ("Origin", origin),
                ("Access-Control-Request-Method", "POST"),
            ), "CORS preflight"))
    elif name == "app-root":
        out.append(Probe("GET", scheme, host, "/", (), "app-root redirect"))
    return out


EXPECTED = frozenset({PREFIX + "ssl-redirect", PREFIX + "force-ssl-redirect"})
"""Annotations whose answer is fixed: plain HTTP gets ``308`` to the same URL over HTTPS."""
MOVED = frozenset({PREFIX + "permanent-redirect", PREFIX + "permanent-redirect-code"})
"""Annotations whose answer is fixed: the code (301 by default) to the annotation's URL."""
PATH_SCOPED = frozenset({
    "ssl-redirect", "force-ssl-redirect", "canary", "canary-weight", "canary-weight-total",
    "canary-by-header", "canary-by-header-value", "canary-by-header-pattern", "canary-by-cookie",
    "enable-cors", "cors-allow-origin", "cors-allow-methods", "cors-allow-headers",
    "cors-expose-headers", "cors-allow-credentials", "cors-max-age", "proxy-read-timeout",
    "proxy-connect-timeout", "proxy-send-timeout", "permanent-redirect",
    "permanent-redirect-code", "backend-protocol",
})
"""Annotations that act on their own Ingress's paths only (nginx puts them in those
locations). ``app-root`` acts on ``/`` only; every other one (``use-regex`` and
``rewrite-target`` turn the whole host to regex locations; unknown ones) is taken to reach
every request of the host."""


def _could_match(written: str, path: str) -> bool:
    """Whether a path as written could take ``path``, over-approximated: any case, any
    path type, no segment boundary (a probe marked wrongly is unchecked, never wrong)."""
    return path.lower().startswith((written or "/").lower().rstrip("/"))


def _matches(written: str, path_type: str, path: str) -> bool:
    """Whether a path as written takes ``path`` by the Ingress path types (case-sensitive,
    Prefix by whole segments): a request no path takes goes to a defaultBackend."""
    written = written or "/"
    if path_type == "Exact":
        return path == written
    stem = written.rstrip("/")
    return not stem or path == stem or path.startswith(stem + "/")


def _covers(rule_host: str, host: str) -> bool:
    return rule_host in ("", host) or (rule_host.startswith("*.") and host.endswith(rule_host[1:]))


def mark(probe: Probe, ingresses: Iterable[Ingress]) -> Probe:
    """``probe`` with the annotations (keys) whose effect it could depend on: those of the
    Ingress paths that could take it (:data:`PATH_SCOPED`), those of its host that reach
    every path, every annotation of an Ingress with a defaultBackend when no path takes it, and
    nginx's default ssl-redirect for plain HTTP to a TLS host's paths."""
    host = probe.host.lower().rstrip(".").partition(":")[0]
    path = probe.path.partition("?")[0]
    notes: set[str] = set()
    ingresses = list(ingresses)
    claimed = any(
        _matches(p.path, p.path_type, path)
        for ing in ingresses for rule in ing.rules if _covers(rule.host, host)
        for p in rule.paths
    )
    values: dict[str, set[str]] = {}  # key -> the values of the Ingresses that reach it
    for ing in ingresses:
        keys = _behaviour_annotations(ing)
        hit: set[str] = set()  # this Ingress's annotations that reach the probe
        if ing.default_backend is not None and not claimed:
            hit |= keys
        for rule in ing.rules:
            if not _covers(rule.host, host):
                continue
            reached = any(_could_match(p.path, path) for p in rule.paths)
            for key in keys:
                name = key[len(PREFIX):]
                if name == "app-root":
                    if path == "/":
                        hit.add(key)
                elif name not in PATH_SCOPED or reached:
                    hit.add(key)
            if reached and probe.scheme == "http" and _ssl_redirect_default(ing, rule.host):
                notes.add(PREFIX + "ssl-redirect")
        notes |= hit
        for key in hit:
            values.setdefault(key, set()).add(ing.annotations[key])
    notes |= set(probe.annotations)
    return Probe(probe.method, probe.scheme, probe.host, probe.path, probe.headers,
                 probe.why, tuple(sorted(notes)), _expected(probe, host, notes, values))


def _expected(
    probe: Probe, host: str, notes: set[str], values: Mapping[str, set[str]]
) -> tuple[tuple[str, str], ...]:
    """ingress-nginx's documented answer when only annotations with a fixed one reach."""
    none = (("backend", "-"), ("backend path", "-"))
    if notes and notes <= EXPECTED and probe.scheme == "http":
        # ssl-redirect: `return 308 https://$redirect_host$request_uri`
        return (("status", "308"), *none, ("location", f"https://{host}{probe.path}"))
    target = values.get(PREFIX + "permanent-redirect", set())
    codes = values.get(PREFIX + "permanent-redirect-code", {"301"})
    if notes and notes <= MOVED and len(target) == 1 and len(codes) == 1:
        # permanent-redirect: `return <code, 301 by default> <url>`
        return (("status", next(iter(codes))), *none, ("location", next(iter(target))))
    return ()


def read_requests(data: Any, source: str = "requests") -> list[Probe]:
    """User requests: a list (or ``{requests: [...]}``) of ``{method, host, path, headers,
    scheme}``; ``host`` is required, ``method`` defaults to GET, ``path`` to ``/``,
    ``scheme`` to http. Malformed entries raise :class:`IngressError` naming the entry."""
    if isinstance(data, Mapping):
        data = data.get("requests")
    if not isinstance(data, list):
        raise IngressError(f"{source}: expected a list of requests (or requests: [...])")
    out = []
    for i, raw in enumerate(data):
        where = f"{source}[{i}]"
        if not isinstance(raw, Mapping):
            raise IngressError(f"{where}: expected a mapping")
        unknown = set(raw) - {"method", "host", "path", "headers", "scheme"}
        if unknown:
            raise IngressError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
        method = str(raw.get("method", "GET")).upper()
        if method not in METHODS:
            raise IngressError(f"{where}.method: {method!r} is not one of {sorted(METHODS)}")
        scheme = str(raw.get("scheme", "http")).lower()
        if scheme not in SCHEMES:
            raise IngressError(f"{where}.scheme: expected http or https")
        host = raw.get("host")
        if not isinstance(host, str) or not host or any(c in host for c in " /\r\n"):
            raise IngressError(f"{where}.host: required, a host name")
        path = raw.get("path", "/")
        if not isinstance(path, str) or not path.startswith("/") or any(
            c in path for c in " \r\n"
        ):
            raise IngressError(f"{where}.path: must start with / and hold no spaces")
        headers = raw.get("headers", {})
        if not isinstance(headers, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) and "\n" not in k + v and "\r" not in k + v
            and k and ":" not in k
            for k, v in headers.items()
        ):
            raise IngressError(f"{where}.headers: expected a mapping of header name to text")
        if any(k.lower() == "host" for k in headers):
            raise IngressError(f"{where}.headers: give the Host as host:")
        out.append(Probe(method, scheme, host, path, tuple(sorted(headers.items())),
                         "user request", ()))
    if len(out) > MAX_PROBES:
        raise IngressError(f"{source}: {len(out)} requests, at most {MAX_PROBES}")
    return out
