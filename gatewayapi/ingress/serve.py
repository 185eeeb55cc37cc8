"""Ingress served by its own semantics (networking.k8s.io/v1), pure: the tables the
waypoint routes an IngressClass's traffic with. Written from the Kubernetes Ingress
reference, not from the Gateway API converter beside it (``convert.py``), so that
``tulle convert --verify`` compares two independent readings.

- Hosts: a rule's ``host`` matches the request's Host exactly (no port, no trailing dot,
  any case: ``types.host_of``); ``*.foo.com`` matches exactly one more label
  (``bar.foo.com``, not ``baz.bar.foo.com`` nor ``foo.com``); a rule without host matches
  every Host. The most specific host group answers (exact, then wildcard, then no host)
  and a request it has no path for does not fall through to a less specific group
  (ingress-nginx's servers behave the same).
- Paths: ``Exact`` matches the path exactly, case-sensitively. ``Prefix`` matches element
  by element, a trailing slash ignored (``/foo/`` and ``/foo`` match ``/foo``, ``/foo/`` and
  ``/foo/bar``, never ``/foobar``). ``ImplementationSpecific`` is treated as ``Prefix``, as
  ingress-nginx does without ``use-regex``. The path is first normalized by the waypoint's
  one path policy (``gatewayapi/paths.py``: dot segments, slashes, escapes).
- Precedence: the longest matching path; at equal length Exact before Prefix; then the
  oldest Ingress (creation time, namespace, name), then rule order.
- ``defaultBackend``: a request no path matches goes to the defaultBackend of the oldest
  Ingress that has rules in the chosen host group and one; else to the class's oldest
  defaultBackend; else 404.
- Backends: a Service of the Ingress's namespace on a port number or a port name; a
  missing Service or port, or a ``resource`` backend (not supported), answers 500 with
  the reason in the flow, as an invalid HTTPRoute backend does.
- TLS: each ``spec.tls`` entry serves its Secret's certificate on port 443 for its hosts
  (a wildcard for one label), oldest Ingress first; an entry without hosts serves any SNI
  no other entry names. A missing or invalid Secret refuses the handshake for its hosts
  (``l7proxy/tls.py``): never another certificate. Hosts are served on port 80 as well.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from agent.model.core import Service
from agent.model.ingress import Ingress, IngressBackend, IngressClass, PathType
from gatewayapi.actions import Selection
from gatewayapi.backends import WeightedChoice
from gatewayapi.ingress.classes import class_addresses, served_ingresses
from gatewayapi.rules import CompiledBackend, CompiledRule
from gatewayapi.tables import ListenerInfo
from gatewayapi.types import (
    INGRESS_CONTROLLER_NAME,
    NO_TIMEOUTS,
    BackendTarget,
    IngressParent,
    NoRoute,
    NoRouteReason,
    RuleRef,
)

HTTP_PORT, HTTPS_PORT = 80, 443
PORTS = (HTTP_PORT, HTTPS_PORT)
ANY_HOST_TLS = "*"
"""The TLS "listener" name of an entry without hosts (its certificate serves any SNI)."""


@dataclass(frozen=True, slots=True)
class PathEntry:
    exact: bool
    key: str
    """Exact: the path; Prefix: the path without trailing slashes ("" for "/")."""
    rule: CompiledRule
    order: int

    @property
    def rank(self) -> tuple[int, int, int]:
        return (-len(self.key), 0 if self.exact else 1, self.order)

    def matches(self, path: str) -> bool:
        if self.exact:
            return path == self.key
        key = self.key
        return not key or path == key or (path.startswith(key) and path[len(key)] == "/")


def path_entry_key(path: str | None, path_type: PathType) -> tuple[bool, str]:
    """(exact, key) for a path as written; ImplementationSpecific is Prefix."""
    path = path or "/"
    if path_type is PathType.EXACT:
        return True, path
    return False, path.rstrip("/")


class HostGroup:
    """The paths of one host (or wildcard, or no host), in precedence order."""

    __slots__ = ("entries", "default")

    def __init__(self, entries: list[PathEntry], default: CompiledRule | None) -> None:
        self.entries = sorted(entries, key=lambda e: e.rank)
        self.default = default

    def find(self, path: str) -> CompiledRule | None:
        for entry in self.entries:
            if entry.matches(path):
                return entry.rule
        return self.default


@dataclass(frozen=True, slots=True)
class ClassTable:
    """One IngressClass: its host groups, its catch-all default and its TLS hosts."""

    exact: Mapping[str, HostGroup]
    wild: Mapping[str, HostGroup]
    any: HostGroup | None
    default: CompiledRule | None
    tls: Mapping[str | None, ListenerInfo]

    def group_for(self, host: str) -> HostGroup | None:
        group = self.exact.get(host)
        if group is None and "." in host:
            group = self.wild.get(host.partition(".")[2])
        return group if group is not None else self.any

    def find(self, host: str, path: str) -> CompiledRule | None:
        group = self.group_for(host)
        return group.find(path) if group is not None else self.default

    def tls_for(self, host: str) -> ListenerInfo | None:
        """The TLS entry that covers ``host`` (exact, one-label wildcard, then the entry
        without hosts): the certificate a request for it must have been served with."""
        info = self.tls.get(host)
        if info is None and "." in host:
            info = self.tls.get("*." + host.partition(".")[2])
        return info if info is not None else self.tls.get(None)


class IngressTables:
    """Every served IngressClass, queried per request by ``RouteTables.select``."""

    __slots__ = ("classes", "addresses")

    def __init__(
        self, classes: Mapping[str, ClassTable], addresses: Mapping[str, tuple[str, ...]]
    ) -> None:
        self.classes = dict(classes)
        self.addresses = dict(addresses)
        """Class -> the addresses its Ingresses' status announces."""

    def select(self, parent: IngressParent, host: str, path: str) -> Selection | NoRoute:
        table = self.classes.get(parent.ingress_class)
        if table is None or parent.port not in PORTS:
            return NoRoute(NoRouteReason.UNKNOWN_PARENT, f"no Ingress served for {parent}")
        rule = table.find(host, path)
        if rule is None:
            return NoRoute(NoRouteReason.NO_MATCHING_RULE, f"no Ingress rule for {host}{path}")
        return Selection(parent, None, parent.port, rule, 0)

    def misdirected(self, parent: IngressParent, host: str, sni_name: str | None) -> bool:
        """Over TLS: a Host whose certificate is not the one SNI chose (421). Two TLS
        entries of the same Secrets are one certificate: a request may go between them."""
        table = self.classes.get(parent.ingress_class)
        if table is None:
            return False
        wanted = table.tls_for(host)
        served = table.tls.get(None if sni_name == ANY_HOST_TLS else sni_name)
        return wanted is None or served is None or wanted.certificates != served.certificates

    def listeners(self) -> tuple[ListenerInfo, ...]:
        return tuple(info for c in self.classes.values() for info in c.tls.values())

    def parents(self) -> dict[tuple[str, int], IngressParent]:
        """(address, port) -> the IngressClass port a redirected connection was for."""
        return {
            (address, port): IngressParent(name, port)
            for name, addresses in self.addresses.items()
            for address in addresses
            for port in PORTS
        }


EMPTY = IngressTables({}, {})


def compile_ingresses(
    ingresses: Iterable[Ingress],
    classes: Iterable[IngressClass],
    services: Iterable[Service],
    *,
    controller: str = INGRESS_CONTROLLER_NAME,
    ignored_addresses: frozenset[str] = frozenset(),
) -> IngressTables:
    """Tables for every IngressClass of ``controller``. ``ignored_addresses``: status
    addresses never served (another object's, such as a Service's ClusterIP)."""
    ports = {
        (s.metadata.namespace, s.metadata.name): {p.name: p.port for p in s.spec.ports}
        for s in services
    }
    ingresses, classes = list(ingresses), list(classes)
    tables = {
        name: _class_table(name, members, ports)
        for name, members in sorted(served_ingresses(ingresses, classes, controller).items())
    }
    addresses = class_addresses(ingresses, classes, controller, ignored_addresses)
    return IngressTables(tables, addresses)


def _class_table(
    name: str, members: list[Ingress], ports: Mapping[tuple[str, str], Mapping[str | None, int]]
) -> ClassTable:
    groups: dict[str | None, list[PathEntry]] = {}
    group_defaults: dict[str | None, CompiledRule] = {}
    default: CompiledRule | None = None
    tls: dict[str | None, ListenerInfo] = {}
    order = 0
    for ingress in members:  # oldest first
        ns, ing_name = ingress.metadata.namespace, ingress.metadata.name
        spec = ingress.spec
        own_default = None
        if spec.default_backend is not None:
            own_default = _rule(ns, ing_name, -1, "defaultBackend", spec.default_backend, ports)
            default = default or own_default
        index = 0
        for i, rule in enumerate(spec.rules):
            host = rule.host or None
            entries = groups.setdefault(host, [])
            if own_default is not None:
                group_defaults.setdefault(host, own_default)
            for j, path in enumerate(rule.http.paths if rule.http else ()):
                exact, key = path_entry_key(path.path, path.path_type)
                compiled = _rule(ns, ing_name, index, f"rules[{i}].paths[{j}]", path.backend,
                                 ports)
                entries.append(PathEntry(exact, key, compiled, order))
                index += 1
                order += 1
        for entry in spec.tls:
            certificates = ((ns, entry.secret_name),) if entry.secret_name else ()
            for host in entry.hosts or (None,):
                tls.setdefault(host, ListenerInfo(
                    ("", name), host or ANY_HOST_TLS, HTTPS_PORT, "HTTPS", host, certificates,
                    ingress_class=name,
                ))

    def group(host: str | None) -> HostGroup:
        return HostGroup(groups[host], group_defaults.get(host, default))

    return ClassTable(
        exact={h: group(h) for h in groups if h is not None and not h.startswith("*.")},
        wild={h[2:]: group(h) for h in groups if h is not None and h.startswith("*.")},
        any=group(None) if None in groups else None,
        default=default,
        tls=tls,
    )


def _rule(
    namespace: str,
    name: str,
    index: int,
    field: str,
    backend: IngressBackend,
    ports: Mapping[tuple[str, str], Mapping[str | None, int]],
) -> CompiledRule:
    target, problem = resolve_backend(namespace, backend, ports)
    return CompiledRule(
        ref=RuleRef(namespace, name, index, field),
        matches=(),
        filters=(),
        backends=(CompiledBackend(target, 1, (), problem),),
        choice=WeightedChoice([1]),
        timeouts=NO_TIMEOUTS,
        retry=None,
        prefix=None,
    )


def resolve_backend(
    namespace: str,
    backend: IngressBackend,
    ports: Mapping[tuple[str, str], Mapping[str | None, int]],
) -> tuple[BackendTarget | None, str]:
    """The Service port a backend names, or None and why not."""
    service = backend.service
    if service is None:
        resource = backend.resource
        what = f"{resource.kind} {resource.name}" if resource is not None else "none"
        return None, f"resource backends are not supported ({what})"
    known = ports.get((namespace, service.name))
    if known is None:
        return None, f"Service {namespace}/{service.name} not found"
    if service.port.name is not None:
        number = known.get(service.port.name)
        if number is None:
            return None, f"Service {namespace}/{service.name} has no port named {service.port.name}"
    else:
        number = service.port.number
        if number not in known.values():
            return None, f"Service {namespace}/{service.name} has no port {number}"
    assert number is not None
    return BackendTarget(namespace, service.name, number), ""
