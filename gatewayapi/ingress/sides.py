"""The documents `tulle convert --verify` serves on each side (pure): the Ingress side
(the input's Ingresses in the one class being verified, served by Tulle's Ingress
controller), the Gateway side (the conversion), and what both need alike: the Services
(the input's, plus one per backend it does not define), Namespaces and TLS Secrets.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from gatewayapi.ingress.convert import Conversion
from gatewayapi.types import CONTROLLER_NAME, INGRESS_CONTROLLER_NAME

Target = tuple[str, str, int]  # namespace, service, port


class VerifyError(ValueError):
    """The side-by-side setup could not be built or started (the message says what)."""


def services_and_targets(
    documents: Sequence[Mapping[str, Any]], conversion: Conversion
) -> tuple[list[dict[str, Any]], list[Target]]:
    """The Services both sides need (the input's, plus one per backend the input does not
    define, with the ports the backends name) and every Service port to run an echo for."""
    given: dict[tuple[str, str], dict[str, Any]] = {
        (d["metadata"].get("namespace", "default"), d["metadata"]["name"]): dict(d)
        for d in documents
        if d.get("kind") == "Service"
    }
    wanted: dict[tuple[str, str], set[int]] = {}
    for doc in documents:
        if doc.get("kind") != "Ingress":
            continue
        ns = doc["metadata"].get("namespace", "default")
        spec = doc.get("spec") or {}
        backends = [spec.get("defaultBackend")] + [
            p.get("backend")
            for r in spec.get("rules") or []
            for p in (r.get("http") or {}).get("paths") or []
        ]
        for backend in backends:
            svc = (backend or {}).get("service")
            if not svc:
                continue
            number = (svc.get("port") or {}).get("number")
            ports = wanted.setdefault((ns, svc["name"]), set())
            if isinstance(number, int):
                ports.add(number)
    for obj in conversion.objects:
        if obj["kind"] != "HTTPRoute":
            continue
        ns = obj["metadata"]["namespace"]
        for rule in obj["spec"].get("rules", []):
            for ref in rule.get("backendRefs", []):
                wanted.setdefault((ref.get("namespace", ns), ref["name"]), set()).add(ref["port"])
    services: list[dict[str, Any]] = []
    targets: set[Target] = set()
    for (ns, name), ports in sorted(wanted.items()):
        svc_doc = given.get((ns, name))
        if svc_doc is None:
            svc_doc = {
                "apiVersion": "v1", "kind": "Service",
                "metadata": {"name": name, "namespace": ns},
                "spec": {"ports": [{"port": p} for p in sorted(ports)]},
            }
        services.append(svc_doc)
        for port in svc_doc.get("spec", {}).get("ports", []):
            targets.add((ns, name, int(port["port"])))
    services += [d for k, d in sorted(given.items()) if k not in wanted]
    return services, sorted(targets)


def gateway_of(conversion: Conversion) -> dict[str, Any]:
    gateways = [o for o in conversion.objects if o["kind"] == "Gateway"]
    if len(gateways) != 1:
        names = ", ".join(g["metadata"]["name"] for g in gateways) or "none"
        raise VerifyError(
            f"--verify checks one IngressClass at a time; the conversion has Gateways: {names}"
        )
    return gateways[0]


def ingress_side(documents: Sequence[Mapping[str, Any]], class_name: str) -> list[dict[str, Any]]:
    """The input's Ingresses, all in ``class_name`` (the one class being verified), and that
    class served by Tulle's Ingress controller."""
    out: list[dict[str, Any]] = [{
        "apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
        "metadata": {"name": class_name},
        "spec": {"controller": INGRESS_CONTROLLER_NAME},
    }]  # fmt: skip
    for doc in documents:
        if doc.get("kind") != "Ingress":
            continue
        ing = copy.deepcopy(dict(doc))
        ing["metadata"].get("annotations", {}).pop("kubernetes.io/ingress.class", None)
        ing.setdefault("spec", {})["ingressClassName"] = class_name
        out.append(ing)
    return out


def namespaces(objects: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    names = sorted({o["metadata"].get("namespace", "default") for o in objects
                    if o.get("kind") not in ("IngressClass", "GatewayClass", "Namespace")})
    return [{"apiVersion": "v1", "kind": "Namespace",
             "metadata": {"name": n, "labels": {"kubernetes.io/metadata.name": n}}}
            for n in names]


def gateway_side(conversion: Conversion, gateway: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The converted objects and their GatewayClass, as Tulle's Gateway controller's."""
    return [{
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
        "metadata": {"name": gateway["spec"]["gatewayClassName"]},
        "spec": {"controllerName": CONTROLLER_NAME},
    }, *copy.deepcopy(conversion.objects)]  # fmt: skip


def tls_secrets(documents: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str], list[str]]:
    """(namespace, Secret) -> the hosts the Ingresses serve with it: both sides get the
    same throwaway certificate for them (the input's own keys are never needed)."""
    out: dict[tuple[str, str], list[str]] = {}
    for doc in documents:
        if doc.get("kind") != "Ingress":
            continue
        ns = doc["metadata"].get("namespace", "default")
        for entry in (doc.get("spec") or {}).get("tls") or []:
            secret = entry.get("secretName")
            if secret:
                hosts = out.setdefault((ns, secret), [])
                hosts += [h for h in entry.get("hosts") or [] if h not in hosts]
    return out
