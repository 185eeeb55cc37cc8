"""Which Ingresses Tulle serves, and under which IngressClass (pure).

An Ingress names its class by ``spec.ingressClassName`` or, as before that field, by the
``kubernetes.io/ingress.class`` annotation (the API server refuses both at once). One with
neither belongs to the default class: the IngressClass annotated
``ingressclass.kubernetes.io/is-default-class: "true"``. When several classes claim to be
the default, Kubernetes' DefaultIngressClass admission refuses new class-less Ingresses,
so none is the default here either: such an Ingress is nobody's. Tulle serves an Ingress
whose class exists and has ``spec.controller`` ``tulle.io/ingress-controller``; every
other Ingress (another controller's class, a class that does not exist) is ignored, as
controllers of other classes must ignore Tulle's.
"""

from __future__ import annotations

from collections.abc import Iterable

from agent.model.ingress import Ingress, IngressClass
from gatewayapi.types import INGRESS_CONTROLLER_NAME


def default_class(classes: Iterable[IngressClass]) -> str | None:
    """The one class marked default, or None (none, or more than one)."""
    defaults = [c.metadata.name for c in classes if c.is_default]
    return defaults[0] if len(defaults) == 1 else None


def class_of(ingress: Ingress, default: str | None) -> str | None:
    """The IngressClass an Ingress belongs to (it may not exist)."""
    return ingress.class_name or default


def served_classes(
    classes: Iterable[IngressClass], controller: str = INGRESS_CONTROLLER_NAME
) -> frozenset[str]:
    return frozenset(c.metadata.name for c in classes if c.spec.controller == controller)


def served_ingresses(
    ingresses: Iterable[Ingress],
    classes: Iterable[IngressClass],
    controller: str = INGRESS_CONTROLLER_NAME,
) -> dict[str, list[Ingress]]:
    """Tulle's classes -> their Ingresses, oldest first (creation time, then namespace and
    name: the order in which conflicting rules are decided)."""
    classes = list(classes)
    ours = served_classes(classes, controller)
    default = default_class(classes)
    out: dict[str, list[Ingress]] = {}
    for ingress in ingresses:
        name = class_of(ingress, default)
        if name in ours:
            out.setdefault(name, []).append(ingress)
    for members in out.values():
        members.sort(key=ingress_order)
    return out


def ingress_order(ingress: Ingress) -> tuple[float, str, str]:
    created = ingress.metadata.creation_timestamp
    return (
        created.timestamp() if created is not None else float("inf"),
        ingress.metadata.namespace,
        ingress.metadata.name,
    )


def class_addresses(
    ingresses: Iterable[Ingress],
    classes: Iterable[IngressClass],
    controller: str = INGRESS_CONTROLLER_NAME,
    ignored: frozenset[str] = frozenset(),
) -> dict[str, tuple[str, ...]]:
    """Tulle's classes -> the IP addresses their Ingresses' ``status.loadBalancer`` names
    (written by the controller that owns them: ``lab/controllers/ingresses.py``), but
    never one of ``ignored`` (a Service's ClusterIP, a Gateway's address: theirs)."""
    out: dict[str, tuple[str, ...]] = {}
    for name, members in served_ingresses(ingresses, classes, controller).items():
        found = {
            lb.ip
            for ing in members
            for lb in ing.status.load_balancer.ingress
            if lb.ip and lb.ip not in ignored
        }
        out[name] = tuple(sorted(found))
    return out
