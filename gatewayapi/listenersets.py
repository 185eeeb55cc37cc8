"""ListenerSets (GEP-1713, Gateway API v1.5+ standard): which attach to which Gateway, in
which order their listeners merge into it, and which of those listeners conflict. Pure.

Spec (apis/v1/listenerset_types.go, conformance/tests/listenerset-*):
- a Gateway takes ListenerSets only from the namespaces its
  ``spec.allowedListeners.namespaces.from`` admits: None (the default), Same, All or a
  Selector over namespace labels; a ListenerSet it does not admit is ``NotAllowed``;
- the merged listener list is the Gateway's own listeners, then the admitted ListenerSets'
  ordered by creation time (oldest first), then by "{namespace}/{name}";
- a ListenerSet listener conflicts with an earlier (higher-precedence), unconflicted one on
  the same port: a different protocol of the same transport is ``ProtocolConflict``, the same
  protocol and hostname ``HostnameConflict``. Only the later one is Conflicted; the
  Gateway's own listeners never lose to a ListenerSet's;
- a ListenerSet none of whose listeners is valid is not Accepted (``ListenersNotValid``);
- routes attach to a ListenerSet's listeners only through a parentRef of kind ListenerSet
  (a parentRef to the Gateway never reaches them), ``allowedRoutes`` ``Same`` meaning the
  ListenerSet's namespace; certificates resolve in the ListenerSet's namespace.

Merged listeners are carried under a qualified name, ``{namespace}/{name}/{entry}``
(``merged_name``): a '/' never occurs in a section name, so it cannot collide with the
Gateway's own listeners, and the route tables key listeners by name within a Gateway.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from agent.model.gateway import (
    GATEWAY_GROUP,
    Gateway,
    GatewayTLSConfig,
    Listener,
    ListenerProtocol,
    ListenersFrom,
)
from agent.model.listenerset import ListenerSet

NAME_LABEL = "kubernetes.io/metadata.name"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class ListenerOrigin:
    """The ListenerSet a merged listener came from, and the entry's own name (what a
    route's sectionName names)."""

    namespace: str
    name: str
    entry: str

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether a ListenerSet attaches to its parent Gateway (before its listeners are
    judged): ``reason`` is "Accepted", "NotAllowed" or "NoParent"."""

    listener_set: ListenerSet
    gateway: tuple[str, str]
    reason: str
    message: str

    @property
    def allowed(self) -> bool:
        return self.reason == "Accepted"


def parent_key(listener_set: ListenerSet) -> tuple[str, str]:
    ref = listener_set.spec.parent_ref
    return (ref.namespace or listener_set.metadata.namespace, ref.name)


def merged_name(origin: ListenerOrigin) -> str:
    return f"{origin.namespace}/{origin.name}/{origin.entry}"


def precedence(listener_set: ListenerSet) -> tuple[datetime, str, str]:
    """Oldest first, then "{namespace}/{name}" (an unset creation time sorts first)."""
    meta = listener_set.metadata
    return (meta.creation_timestamp or _EPOCH, meta.namespace, meta.name)


def allows(gateway: Gateway, namespace: str, labels: Mapping[str, Mapping[str, str]]) -> bool:
    """Whether ``gateway`` takes ListenerSets from ``namespace``."""
    allowed = gateway.spec.allowed_listeners
    if allowed is None:
        return False
    namespaces = allowed.namespaces
    match namespaces.from_:
        case ListenersFrom.ALL:
            return True
        case ListenersFrom.SAME:
            return namespace == gateway.metadata.namespace
        case ListenersFrom.SELECTOR:
            selector = namespaces.selector
            ns_labels = {**labels.get(namespace, {}), NAME_LABEL: namespace}
            return selector is not None and selector.matches(ns_labels)
    return False


def judge(
    listener_sets: Iterable[ListenerSet],
    gateways: Mapping[tuple[str, str], Gateway],
    labels: Mapping[str, Mapping[str, str]],
) -> list[Verdict]:
    """Each ListenerSet's attachment to its parent, in precedence order."""
    verdicts = []
    for ls in sorted(listener_sets, key=precedence):
        key = parent_key(ls)
        ref = ls.spec.parent_ref
        where = f"{key[0]}/{key[1]}"
        gateway = gateways.get(key)
        if (ref.group, ref.kind) != (GATEWAY_GROUP, "Gateway"):
            verdict = Verdict(ls, key, "NoParent", f"parentRef kind {ref.kind} is not a Gateway")
        elif gateway is None:
            verdict = Verdict(ls, key, "NoParent", f"Gateway {where} not found")
        elif not allows(gateway, ls.metadata.namespace, labels):
            verdict = Verdict(
                ls, key, "NotAllowed",
                f"Gateway {where} does not allow ListenerSets from namespace "
                f"{ls.metadata.namespace} (spec.allowedListeners)",
            )
        else:
            verdict = Verdict(ls, key, "Accepted", "")
        verdicts.append(verdict)
    return verdicts


def merged_listeners(listener_set: ListenerSet) -> list[tuple[Listener, ListenerOrigin]]:
    """A ListenerSet's entries as listeners of its Gateway: qualified names, and
    certificate references resolved in the ListenerSet's namespace."""
    ns, name = listener_set.metadata.namespace, listener_set.metadata.name
    out = []
    for entry in listener_set.spec.listeners:
        origin = ListenerOrigin(ns, name, entry.name)
        tls = entry.tls
        if tls is not None:
            refs = tuple(replace(r, namespace=r.namespace or ns) for r in tls.certificate_refs)
            tls = GatewayTLSConfig(tls.mode, refs)
        out.append((replace(entry, name=merged_name(origin), tls=tls), origin))
    return out


def _transport(protocol: ListenerProtocol) -> str:
    return "udp" if protocol is ListenerProtocol.UDP else "tcp"


def conflicts(own: Sequence[Listener], added: Sequence[Listener]) -> list[tuple[str, str]]:
    """(reason, message) for each of ``added`` in order, ("", "") when it does not conflict
    with the Gateway's ``own`` listeners or an earlier unconflicted one of ``added``."""
    served: list[Listener] = list(own)
    out = []
    for listener in added:
        found = ("", "")
        for earlier in served:
            if earlier.port != listener.port:
                continue
            if _transport(earlier.protocol) != _transport(listener.protocol):
                continue
            if earlier.protocol != listener.protocol:
                found = (
                    "ProtocolConflict",
                    f"port {listener.port} is already used with protocol {earlier.protocol}",
                )
                break
            if earlier.hostname == listener.hostname:
                host = listener.hostname or "every hostname"
                found = (
                    "HostnameConflict",
                    f"port {listener.port} {listener.protocol} already serves {host}",
                )
                break
        if not found[0]:
            served.append(listener)
        out.append(found)
    return out


def served_listeners(
    gateway: Gateway,
    listener_sets: Iterable[ListenerSet],
    labels: Mapping[str, Mapping[str, str]],
) -> tuple[Listener, ...]:
    """The listeners whose ports the Gateway's address takes (the waypoint's redirection and
    its parents by port): its own, then the unconflicted ones of the ListenerSets it
    admits. A ListenerSet it does not admit never opens a port."""
    key = (gateway.metadata.namespace, gateway.metadata.name)
    admitted = [v.listener_set for v in judge(listener_sets, {key: gateway}, labels)
                if v.allowed and v.gateway == key]
    added = [listener for ls in admitted for listener, _ in merged_listeners(ls)]
    found = conflicts(gateway.spec.listeners, added)
    kept = [lis for lis, c in zip(added, found, strict=True) if not c[0]]
    return (*gateway.spec.listeners, *kept)


def namespace_labels(namespaces: Iterable[object]) -> dict[str, Mapping[str, str]]:
    """name -> labels of Namespace models (anything with ``metadata.name``/``labels``)."""
    return {n.metadata.name: n.metadata.labels for n in namespaces}  # type: ignore[attr-defined]
