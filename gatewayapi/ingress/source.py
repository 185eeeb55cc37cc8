"""Strict reading of networking.k8s.io/v1 Ingress, IngressClass and v1 Service dicts.

Ingress is not in Tulle's typed model yet, so the converter reads what it needs here.
Malformed input raises :class:`IngressError` naming the object and the field, e.g.
``Ingress shop/web: spec.rules[0].http.paths[1].pathType: unsupported value "Regex"
(supported: Exact, Prefix, ImplementationSpecific)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

INGRESS_API = "networking.k8s.io/v1"
PATH_TYPES = ("Exact", "Prefix", "ImplementationSpecific")
DEFAULT_CLASS_ANNOTATION = "ingressclass.kubernetes.io/is-default-class"
CLASS_ANNOTATION = "kubernetes.io/ingress.class"


class IngressError(ValueError):
    """An Ingress-side object that cannot be read; ``str()`` names object and field."""


@dataclass(frozen=True, slots=True)
class Backend:
    """A Service backend. ``port_name`` when the Ingress names the port, else ``port``."""

    service: str
    port: int | None = None
    port_name: str | None = None
    resource: bool = False  # a spec.*.resource backend (not a Service)


@dataclass(frozen=True, slots=True)
class IngressPath:
    path: str
    path_type: str
    backend: Backend


@dataclass(frozen=True, slots=True)
class IngressRule:
    host: str  # "" for a rule without host
    paths: tuple[IngressPath, ...]


@dataclass(frozen=True, slots=True)
class IngressTLS:
    hosts: tuple[str, ...]
    secret_name: str | None


@dataclass(frozen=True, slots=True)
class Ingress:
    name: str
    namespace: str
    annotations: Mapping[str, str]
    class_name: str | None
    rules: tuple[IngressRule, ...]
    tls: tuple[IngressTLS, ...] = ()
    default_backend: Backend | None = None

    @property
    def subject(self) -> str:
        return f"Ingress {self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True)
class IngressClass:
    name: str
    controller: str
    is_default: bool


@dataclass(frozen=True, slots=True)
class ServicePorts:
    """A Service's named ports, to resolve ``service.port.name`` backends."""

    name: str
    namespace: str
    ports: Mapping[str, int] = field(default_factory=dict)


class _Fields:
    def __init__(self, subject: str) -> None:
        self.subject = subject

    def fail(self, path: str, message: str) -> IngressError:
        return IngressError(f"{self.subject}: {path}: {message}")

    def obj(self, value: Any, path: str, required: bool = False) -> Mapping[str, Any]:
        if value is None and not required:
            return {}
        if not isinstance(value, Mapping):
            raise self.fail(
                path, "required" if value is None else f"expected object, got {_kind(value)}"
            )
        return value

    def lst(self, value: Any, path: str) -> list[Any]:
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.fail(path, f"expected list, got {_kind(value)}")
        return value

    def text(self, value: Any, path: str, required: bool = False) -> str | None:
        if value is None or value == "":
            if required:
                raise self.fail(path, "required")
            return None
        if not isinstance(value, str):
            raise self.fail(path, f"expected string, got {_kind(value)}")
        return value


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "boolean", int: "integer", float: "number", str: "string", list: "list"}.get(
        type(value), "object"
    )


def _meta(obj: Mapping[str, Any], kind: str, namespaced: bool) -> tuple[str, str, _Fields]:
    meta = obj.get("metadata")
    name = meta.get("name") if isinstance(meta, Mapping) else None
    ns = (meta.get("namespace") if isinstance(meta, Mapping) else None) or "default"
    if not isinstance(ns, str):
        ns = "default"
    label = f"{kind} {ns}/{name}" if namespaced else f"{kind} {name}"
    f = _Fields(label if isinstance(name, str) and name else f"{kind} <unnamed>")
    f.obj(meta, "metadata", required=True)
    name = f.text(name, "metadata.name", required=True)
    assert name is not None
    if obj.get("apiVersion") != ("v1" if kind == "Service" else INGRESS_API):
        raise f.fail("apiVersion", f"unsupported apiVersion {obj.get('apiVersion')!r}")
    return name, ns if namespaced else "", f


def _annotations(f: _Fields, meta: Mapping[str, Any]) -> dict[str, str]:
    raw = f.obj(meta.get("annotations"), "metadata.annotations")
    out: dict[str, str] = {}
    for key, value in raw.items():
        if not isinstance(value, str):
            raise f.fail(f"metadata.annotations[{key}]", f"expected string, got {_kind(value)}")
        out[str(key)] = value
    return out


def _backend(f: _Fields, raw: Any, path: str) -> Backend:
    b = f.obj(raw, path, required=True)
    if b.get("resource") is not None:
        if b.get("service") is not None:
            raise f.fail(path, "service and resource are mutually exclusive")
        f.obj(b["resource"], f"{path}.resource")
        return Backend(service="", resource=True)
    svc = f.obj(b.get("service"), f"{path}.service", required=True)
    name = f.text(svc.get("name"), f"{path}.service.name", required=True)
    port = f.obj(svc.get("port"), f"{path}.service.port", required=True)
    number, pname = port.get("number"), port.get("name")
    if (number is None) == (pname is None):
        raise f.fail(f"{path}.service.port", "exactly one of number or name is required")
    if number is not None:
        if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= 65535:
            raise f.fail(f"{path}.service.port.number", f"must be a port 1-65535, got {number!r}")
        return Backend(service=name or "", port=number)
    return Backend(service=name or "", port_name=f.text(pname, f"{path}.service.port.name"))


def read_ingress(obj: Mapping[str, Any]) -> Ingress:
    name, ns, f = _meta(obj, "Ingress", namespaced=True)
    meta = obj["metadata"]
    annotations = _annotations(f, meta)
    spec = f.obj(obj.get("spec"), "spec")
    rules: list[IngressRule] = []
    for i, raw in enumerate(f.lst(spec.get("rules"), "spec.rules")):
        rule = f.obj(raw, f"spec.rules[{i}]", required=True)
        host = f.text(rule.get("host"), f"spec.rules[{i}].host") or ""
        if host and (host.count("*") > 1 or ("*" in host and not host.startswith("*."))):
            raise f.fail(f"spec.rules[{i}].host", f"invalid wildcard host {host!r}")
        http = f.obj(rule.get("http"), f"spec.rules[{i}].http")
        paths: list[IngressPath] = []
        for j, rawp in enumerate(f.lst(http.get("paths"), f"spec.rules[{i}].http.paths")):
            where = f"spec.rules[{i}].http.paths[{j}]"
            p = f.obj(rawp, where, required=True)
            ptype = f.text(p.get("pathType"), f"{where}.pathType", required=True)
            if ptype not in PATH_TYPES:
                raise f.fail(
                    f"{where}.pathType",
                    f"unsupported value {ptype!r} (supported: {', '.join(PATH_TYPES)})",
                )
            value = f.text(p.get("path"), f"{where}.path") or "/"
            if not value.startswith("/"):
                raise f.fail(f"{where}.path", f"must be an absolute path, got {value!r}")
            paths.append(
                IngressPath(value, ptype or "", _backend(f, p.get("backend"), f"{where}.backend"))
            )
        rules.append(IngressRule(host, tuple(paths)))
    tls: list[IngressTLS] = []
    for i, raw in enumerate(f.lst(spec.get("tls"), "spec.tls")):
        entry = f.obj(raw, f"spec.tls[{i}]", required=True)
        hosts = [
            f.text(h, f"spec.tls[{i}].hosts[{k}]", required=True) or ""
            for k, h in enumerate(f.lst(entry.get("hosts"), f"spec.tls[{i}].hosts"))
        ]
        tls.append(
            IngressTLS(tuple(hosts), f.text(entry.get("secretName"), f"spec.tls[{i}].secretName"))
        )
    default = spec.get("defaultBackend")
    if default is None and not rules:
        raise f.fail("spec", "either defaultBackend or rules must be specified")
    class_name = f.text(spec.get("ingressClassName"), "spec.ingressClassName")
    return Ingress(
        name=name,
        namespace=ns,
        annotations=annotations,
        class_name=class_name or annotations.get(CLASS_ANNOTATION) or None,
        rules=tuple(rules),
        tls=tuple(tls),
        default_backend=None if default is None else _backend(f, default, "spec.defaultBackend"),
    )


def read_ingress_class(obj: Mapping[str, Any]) -> IngressClass:
    name, _, f = _meta(obj, "IngressClass", namespaced=False)
    annotations = _annotations(f, obj["metadata"])
    spec = f.obj(obj.get("spec"), "spec")
    controller = f.text(spec.get("controller"), "spec.controller") or ""
    return IngressClass(name, controller, annotations.get(DEFAULT_CLASS_ANNOTATION) == "true")


def read_service_ports(obj: Mapping[str, Any]) -> ServicePorts:
    name, ns, f = _meta(obj, "Service", namespaced=True)
    spec = f.obj(obj.get("spec"), "spec")
    ports: dict[str, int] = {}
    for i, raw in enumerate(f.lst(spec.get("ports"), "spec.ports")):
        port = f.obj(raw, f"spec.ports[{i}]", required=True)
        pname, number = port.get("name"), port.get("port")
        if isinstance(pname, str) and pname and isinstance(number, int):
            ports[pname] = number
    return ServicePorts(name, ns, ports)
