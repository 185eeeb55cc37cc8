"""What `tulle convert --verify --lab NAME` applies to a running lab, and what it deletes
afterwards (pure).

Both sides go into the lab next to whatever is there, under names of their own
(``NAME-verify-RUN``) so nothing the user applied is overwritten:

- the Ingress side: a copy of every input Ingress in its own namespace, of the lab's
  Ingress class ``tulle`` whatever class (or none) the input named: the class the
  conversion was made for is the one being verified, and the lab has one Ingress
  controller, Tulle's. They are served at the IngressClass's pool address, with any other
  ``tulle`` Ingress already in the lab (that is how the lab serves them).
- the Gateway side: the converted Gateway (class ``tulle``: its own pool address), its
  HTTPRoutes and ReferenceGrants, all renamed, the routes' parentRefs pointing at the
  renamed Gateway.
- the TLS Secrets both name: a throwaway certificate each (the input's keys are never
  read), renamed, and both sides' references rewritten to the copies.

Backends are not applied: the Ingresses' and routes' Services must already run in the lab
(:func:`backend_services` names them; a missing one is an error before anything is
applied). The cleanup plan deletes exactly what was applied, in reverse order.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gatewayapi.ingress.convert import Conversion
from gatewayapi.ingress.sides import VerifyError, gateway_of

LAB_CLASS = "tulle"
"""The lab's IngressClass and GatewayClass (lab/seed.py), both served by Tulle."""
LABEL = "tulle.io/convert-verify"
"""Label on everything applied, valued with the run's suffix (find leftovers by it)."""
MAX_NAME = 63
"""Names are kept to a DNS label: a Gateway's name also names what serves it."""
_OWN_META = ("name", "namespace", "labels", "annotations")

Ref = tuple[str, str, str | None, str]
"""(apiVersion, kind, namespace or None, name): one object applied, as deleted."""


@dataclass(frozen=True, slots=True)
class LabPlan:
    objects: list[dict[str, Any]]
    """What to apply, in order: Secrets, ReferenceGrants, Gateway, HTTPRoutes, Ingresses."""
    cleanup: list[Ref]
    """What to delete afterwards: every applied object, in reverse order."""
    ingresses: list[tuple[str, str]]
    """(namespace, name) of the Ingress copies (their status holds the Ingress address)."""
    gateway: tuple[str, str]
    """(namespace, name) of the converted Gateway (its status holds the Gateway address)."""
    routes: list[tuple[str, str]]
    notes: list[str] = field(default_factory=list)
    """How the input was adapted (class rewritten), for the user."""


def verify_name(name: str, suffix: str) -> str:
    """``name-verify-SUFFIX``, the name cut so the whole fits :data:`MAX_NAME`."""
    tail = f"-verify-{suffix}"
    # Lower-case letters and digits: str.islower() is False for all digits, which
    # secrets.token_hex(3) gives in 6% of runs ((10/16)**6: a run refused for nothing).
    if not (suffix.isascii() and suffix.isalnum() and suffix == suffix.lower()) or len(
        tail
    ) > MAX_NAME // 2:
        raise VerifyError(f"bad run suffix {suffix!r}: lower-case letters and digits, short")
    return name[: MAX_NAME - len(tail)].rstrip("-.") + tail


def _fresh(doc: Mapping[str, Any], name: str, suffix: str) -> dict[str, Any]:
    """A copy of ``doc`` under ``name``: only its own metadata (not a read-back object's
    uid, resourceVersion or status), labelled as this run's."""
    out = copy.deepcopy(dict(doc))
    meta = {k: v for k, v in out.get("metadata", {}).items() if k in _OWN_META}
    meta["name"] = name
    meta["labels"] = {**meta.get("labels", {}), LABEL: suffix}
    out["metadata"] = meta
    out.pop("status", None)
    return out


def _ref(doc: Mapping[str, Any]) -> Ref:
    meta = doc["metadata"]
    return (doc["apiVersion"], doc["kind"], meta.get("namespace"), meta["name"])


def backend_services(
    documents: Sequence[Mapping[str, Any]], conversion: Conversion
) -> list[tuple[str, str]]:
    """(namespace, name) of every Service either side sends to: they must run in the lab."""
    wanted: set[tuple[str, str]] = set()
    for doc in documents:
        if doc.get("kind") != "Ingress":
            continue
        ns = doc["metadata"].get("namespace", "default")
        spec = doc.get("spec") or {}
        for backend in [spec.get("defaultBackend")] + [
            p.get("backend")
            for r in spec.get("rules") or []
            for p in (r.get("http") or {}).get("paths") or []
        ]:
            svc = (backend or {}).get("service")
            if svc and svc.get("name"):
                wanted.add((ns, svc["name"]))
    for obj in conversion.objects:
        if obj["kind"] == "HTTPRoute":
            ns = obj["metadata"]["namespace"]
            for rule in obj["spec"].get("rules", []):
                for ref in rule.get("backendRefs", []):
                    if ref.get("kind", "Service") == "Service":
                        wanted.add((ref.get("namespace", ns), ref["name"]))
    return sorted(wanted)


def missing_services(
    wanted: Sequence[tuple[str, str]], present: Sequence[tuple[str, str]]
) -> str | None:
    """The error when a backend Service is not in the lab, else None."""
    gone = [f"{ns}/{name}" for ns, name in wanted if (ns, name) not in set(present)]
    if not gone:
        return None
    return (
        f"the lab has no Service {', '.join(gone)}: --verify --lab sends to the lab's own "
        "backends; deploy them first (or verify on loopback: no --lab)"
    )


def lab_plan(
    documents: Sequence[Mapping[str, Any]],
    conversion: Conversion,
    secrets: Sequence[Mapping[str, Any]],
    suffix: str,
) -> LabPlan:
    """The objects to apply for both sides, renamed for run ``suffix``; ``secrets`` are the
    throwaway TLS Secrets (under the names the Ingresses use) to apply renamed."""
    gateway = gateway_of(conversion)
    gw_ns, gw_name = gateway["metadata"]["namespace"], gateway["metadata"]["name"]
    new_gw = verify_name(gw_name, suffix)
    renamed_secret: dict[tuple[str, str], str] = {}
    objects: list[dict[str, Any]] = []
    for secret in secrets:
        ns, name = secret["metadata"].get("namespace", "default"), secret["metadata"]["name"]
        renamed_secret[(ns, name)] = verify_name(name, suffix)
        objects.append(_fresh(secret, renamed_secret[(ns, name)], suffix))
    notes: list[str] = []
    for obj in conversion.objects:
        if obj["kind"] == "ReferenceGrant":
            grant = _fresh(obj, verify_name(obj["metadata"]["name"], suffix), suffix)
            ns = grant["metadata"]["namespace"]
            for to in grant["spec"].get("to", []):
                if to.get("kind") == "Secret" and (ns, to.get("name")) in renamed_secret:
                    to["name"] = renamed_secret[(ns, to["name"])]
            objects.append(grant)
    gw = _fresh(gateway, new_gw, suffix)
    if gw["spec"].get("gatewayClassName") != LAB_CLASS:
        notes.append(f"the Gateway's class {gw['spec'].get('gatewayClassName')!r} is served "
                     f"as the lab's {LAB_CLASS!r}")
    gw["spec"]["gatewayClassName"] = LAB_CLASS
    gw["spec"].pop("addresses", None)  # its own address from the lab's pool
    for listener in gw["spec"].get("listeners", []):
        for cert in (listener.get("tls") or {}).get("certificateRefs", []):
            key = (cert.get("namespace", gw_ns), cert.get("name"))
            if cert.get("kind", "Secret") == "Secret" and key in renamed_secret:
                cert["name"] = renamed_secret[key]
    objects.append(gw)
    routes: list[tuple[str, str]] = []
    for obj in conversion.objects:
        if obj["kind"] != "HTTPRoute":
            continue
        route = _fresh(obj, verify_name(obj["metadata"]["name"], suffix), suffix)
        ns = route["metadata"]["namespace"]
        for parent in route["spec"].get("parentRefs", []):
            if parent.get("name") == gw_name and parent.get("namespace", ns) == gw_ns:
                parent["name"] = new_gw
        routes.append((ns, route["metadata"]["name"]))
        objects.append(route)
    ingresses: list[tuple[str, str]] = []
    for doc in documents:
        if doc.get("kind") != "Ingress":
            continue
        ns = doc["metadata"].get("namespace", "default")
        ing = _fresh(doc, verify_name(doc["metadata"]["name"], suffix), suffix)
        ing["metadata"]["namespace"] = ns
        annotations = ing["metadata"].get("annotations", {})
        given = annotations.pop("kubernetes.io/ingress.class", None)
        spec = ing.setdefault("spec", {})
        given = spec.get("ingressClassName", given)
        if given != LAB_CLASS:
            notes.append(f"Ingress {ns}/{doc['metadata']['name']} (class "
                         f"{given or 'none'}) is served as the lab's class {LAB_CLASS!r}")
        spec["ingressClassName"] = LAB_CLASS
        for entry in spec.get("tls") or []:
            if (ns, entry.get("secretName")) in renamed_secret:
                entry["secretName"] = renamed_secret[(ns, entry["secretName"])]
        ingresses.append((ns, ing["metadata"]["name"]))
        objects.append(ing)
    if not ingresses:
        raise VerifyError("no Ingress to verify")
    return LabPlan(objects, [_ref(o) for o in reversed(objects)], ingresses, (gw_ns, new_gw),
                   routes, notes)


def backend_of(echo: Mapping[str, Any]) -> str:
    """Which backend answered, from the lab echo server's answer: ``namespace/workload:port``,
    the workload being the pod's name without the Deployment's two generated suffixes
    (which replica answered is not a difference)."""
    pod = str(echo.get("pod", ""))
    parts = pod.rsplit("-", 2)
    workload = parts[0] if len(parts) == 3 else pod
    return f"{echo.get('namespace', '')}/{workload or '?'}:{echo.get('httpPort', '')}"
