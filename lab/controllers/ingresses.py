"""The lab's Ingress controller: an address for each of Tulle's IngressClasses, written to
``status.loadBalancer.ingress`` of every Ingress it serves, and a Warning Event for each
TLS entry whose Secret cannot serve (the waypoints then refuse HTTPS for its hosts).

Routing is the waypoints' (``gatewayapi/ingress/serve.py``); this only decides addresses
and reports. A class's address is LoadBalancer IPAM's (``controlplane.lbipam``: the same
pool as LoadBalancer Services and Gateways, so the external client reaches it, and the
agents announce it); a class that waits for one leaves its Ingresses without an address.
Without that plan (no LoadBalancer controller) ``class_address`` draws one from the service
range, which only pods reach.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

from agent.model.cache import ModelCache
from agent.model.core import TLS_SECRET_TYPE, Secret, Service
from agent.model.gateway import Gateway
from agent.model.ingress import Ingress, IngressClass
from controlplane.lbipam import Plan
from gatewayapi.ingress.classes import served_ingresses
from l7proxy.tlscerts import certificate_problem
from lab.controllers.events import EventSink, involved
from lab.ipam import allocate_cluster_ip
from lab.kubeapi import NotFound, StatusWriter

log = logging.getLogger("tulle.ingresses")
KINDS = ("Ingress", "IngressClass")
COMPONENT = "tulle-ingress-controller"
CertificateCheck = Callable[[bytes, bytes], str | None]


@functools.lru_cache(maxsize=256)
def _certificate_problem(crt: bytes, key: bytes) -> str | None:
    """The waypoint's own check, once per Secret content (as ``gateways.py`` does)."""
    return certificate_problem(crt, key)


def taken_addresses(
    services: Sequence[Service], gateways: Sequence[Gateway], ingresses: Sequence[Ingress]
) -> set[Any]:
    """Service ClusterIPs, Gateway addresses and every Ingress status address."""
    texts = [s.spec.cluster_ip for s in services]
    texts += [a.value for g in gateways for a in g.status.addresses]
    texts += [lb.ip for i in ingresses for lb in i.status.load_balancer.ingress]
    found: set[Any] = set()
    for text in texts:
        try:
            found.add(ipaddress.ip_address(text or ""))
        except ValueError:
            continue
    return found


def class_address(
    name: str, members: Sequence[Ingress], taken: set[Any], claimed: Collection[str] = ()
) -> str:
    """The address of IngressClass ``name``: the one its Ingresses already announce (the
    oldest's; never one another class ``claimed``, as an Ingress that changed class still
    shows), else a fresh one from the service range."""
    for ingress in members:
        for lb in ingress.status.load_balancer.ingress:
            if lb.ip and lb.ip not in claimed:
                return lb.ip
    ip = allocate_cluster_ip(("ingressclass", name), taken)
    taken.add(ip)
    return str(ip)


def plan_statuses(
    ingresses: Sequence[Ingress],
    classes: Sequence[IngressClass],
    services: Sequence[Service],
    gateways: Sequence[Gateway],
    pooled: Mapping[str, str | None] | None = None,
) -> dict[tuple[str, str], dict[str, Any]]:
    """(namespace, name) -> the status each Ingress must have (pure). A served Ingress
    announces its class's address (``pooled``: LoadBalancer IPAM's per class, None while
    one waits; without it, ``class_address``); one Tulle no longer serves (its class
    changed), or whose class waits, loses an address of Tulle's."""
    served = served_ingresses(ingresses, classes)
    taken = taken_addresses(services, gateways, ingresses)
    ours: dict[tuple[str, str], str] = {}
    waiting: set[tuple[str, str]] = set()
    for name, members in sorted(served.items()):
        address = (
            class_address(name, members, taken, set(ours.values()))
            if pooled is None
            else pooled.get(name)
        )
        if address is None:
            waiting.update((i.metadata.namespace, i.metadata.name) for i in members)
            continue
        for ingress in members:
            ours[(ingress.metadata.namespace, ingress.metadata.name)] = address
    addresses = set(ours.values())
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for ingress in ingresses:
        key = (ingress.metadata.namespace, ingress.metadata.name)
        if key in ours:
            out[key] = {"loadBalancer": {"ingress": [{"ip": ours[key]}]}}
        elif any(
            key in waiting or lb.ip in addresses for lb in ingress.status.load_balancer.ingress
        ):
            out[key] = {"loadBalancer": {}}
    return out


def tls_problems(
    ingress: Ingress, secrets: Collection[Secret], check: CertificateCheck
) -> list[str]:
    """Why each of the Ingress's TLS entries cannot serve (none: all can)."""
    by_name = {(s.metadata.namespace, s.metadata.name): s for s in secrets}
    problems = []
    for i, entry in enumerate(ingress.spec.tls):
        hosts = ", ".join(entry.hosts) or "every host without its own entry"
        where = f"spec.tls[{i}] (hosts {hosts})"
        if entry.secret_name is None:
            problems.append(f"{where}: no secretName: HTTPS is refused for these hosts")
            continue
        key = (ingress.metadata.namespace, entry.secret_name)
        secret = by_name.get(key)
        if secret is None:
            why = f"Secret {'/'.join(key)} not found"
        elif secret.type != TLS_SECRET_TYPE:
            why = f"Secret {'/'.join(key)} is of type {secret.type}, not {TLS_SECRET_TYPE}"
        elif not secret.data.get("tls.crt") or not secret.data.get("tls.key"):
            why = f"Secret {'/'.join(key)} lacks tls.crt or tls.key"
        else:
            problem = check(secret.data["tls.crt"], secret.data["tls.key"])
            if problem is None:
                continue
            why = f"Secret {'/'.join(key)}: {problem}"
        problems.append(f"{where}: {why}: HTTPS is refused for these hosts")
    return problems


class IngressController:
    def __init__(
        self, api: StatusWriter, events: EventSink,
        check: CertificateCheck = _certificate_problem,
    ) -> None:
        self.api = api
        self.events = events
        self.check = check
        self.models = ModelCache()
        self.reported: set[tuple[str, str, str]] = set()  # (namespace, name, message)

    def reconcile(
        self, objects: Sequence[dict[str, Any]], services: Sequence[Service],
        lb: Plan | None = None,
    ) -> None:
        """``objects``: the Ingress kinds, Gateways and Secrets as the API serves them;
        ``lb``: LoadBalancer IPAM's plan this round, which gives each class its address."""
        typed = self.models.decode_all(objects, (*KINDS, "Gateway", "Secret"))
        ingresses = [o for o in typed if isinstance(o, Ingress)]
        if not ingresses:
            return
        classes = [o for o in typed if isinstance(o, IngressClass)]
        gateways = [o for o in typed if isinstance(o, Gateway)]
        current = {
            (o["metadata"].get("namespace", ""), o["metadata"]["name"]): o.get("status") or {}
            for o in objects
            if o.get("kind") == "Ingress"
        }
        for (ns, name), status in plan_statuses(
            ingresses, classes, services, gateways, None if lb is None else lb.ingress_classes
        ).items():
            merged = {**current.get((ns, name), {}), **status}
            if merged != current.get((ns, name)):
                try:
                    self.api.update_status("Ingress", ns, name, merged)
                    log.info("ingress %s/%s: status %s", ns, name, status)
                except NotFound:
                    continue
        secrets = [o for o in typed if isinstance(o, Secret)]
        for members in served_ingresses(ingresses, classes).values():
            for ingress in members:
                self._report(ingress, tls_problems(ingress, secrets, self.check))

    def _report(self, ingress: Ingress, problems: list[str]) -> None:
        ns, name = ingress.metadata.namespace, ingress.metadata.name
        for message in problems:
            if (ns, name, message) in self.reported:
                continue
            self.reported.add((ns, name, message))
            log.warning("ingress %s/%s: %s", ns, name, message)
            self.events.record(involved(ingress), "InvalidTLSSecret", message, COMPONENT,
                               "Warning")
