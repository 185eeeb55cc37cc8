"""Readers for networking.k8s.io/v1 Ingress and IngressClass, with the API server's
validation (k8s.io/kubernetes pkg/apis/networking/validation): ``defaultBackend`` or
``rules``; hosts DNS names, a wildcard only as a whole first label, never an IP;
``pathType`` required; Exact and Prefix paths absolute and free of ``//``, ``/./``,
``/../``, ``%2f`` and a trailing ``/..`` or ``/.``; a backend is a service or a resource,
never both; a service port is a number or a name, never both; the class annotation and
``ingressClassName`` are not both set."""

from __future__ import annotations

from agent.model.ingress import (
    CLASS_ANNOTATION,
    HTTPIngressPath,
    HTTPIngressRuleValue,
    Ingress,
    IngressBackend,
    IngressClass,
    IngressClassParametersReference,
    IngressClassSpec,
    IngressLoadBalancerIngress,
    IngressLoadBalancerStatus,
    IngressRule,
    IngressServiceBackend,
    IngressSpec,
    IngressStatus,
    IngressTLS,
    PathType,
    PortStatus,
    ServiceBackendPort,
    TypedLocalObjectReference,
)
from agent.model.meta import ObjectMeta
from agent.model.reader import REQUIRED, Reader
from agent.model.validation import (
    controller_name,
    dns1035_label,
    dns1123_subdomain,
    hostname,
    iana_svc_name,
    ip_address,
    quote,
)

INVALID_PATH_SEQUENCES = ("//", "/./", "/../", "%2f", "%2F")
INVALID_PATH_SUFFIXES = ("/..", "/.")
MAX_CONTROLLER_LENGTH = 250


def read_ingress(r: Reader, metadata: ObjectMeta) -> Ingress:
    spec = r.obj("spec", _read_spec, IngressSpec())
    if spec.ingress_class_name is not None and CLASS_ANNOTATION in metadata.annotations:
        r.fail(
            f"metadata.annotations[{CLASS_ANNOTATION}]",
            "can not be set when the class field is also set",
        )
    return Ingress(metadata, spec, r.obj("status", _read_status, IngressStatus()))


def _ingress_host(value: str) -> str | None:
    """A rule or TLS host: a DNS-1123 subdomain, "*." allowed as the whole first label."""
    if ip_address(value) is None:
        return f"invalid value {quote(value)}: must be a DNS name, not an IP address"
    return hostname(value)


def _read_spec(r: Reader) -> IngressSpec:
    spec = IngressSpec(
        ingress_class_name=r.string("ingressClassName", check=dns1123_subdomain),
        default_backend=r.obj("defaultBackend", _read_backend),
        tls=r.objects("tls", _read_tls),
        rules=r.objects("rules", _read_rule),
    )
    if spec.default_backend is None and not spec.rules:
        r.fail(None, "either `defaultBackend` or `rules` must be specified")
    return spec


def _read_tls(r: Reader) -> IngressTLS:
    return IngressTLS(
        hosts=r.string_list("hosts", check=_ingress_host),
        secret_name=r.string("secretName", check=dns1123_subdomain),
    )


def _read_rule(r: Reader) -> IngressRule:
    return IngressRule(
        host=r.string("host", check=_ingress_host), http=r.obj("http", _read_http)
    )


def _read_http(r: Reader) -> HTTPIngressRuleValue:
    return HTTPIngressRuleValue(paths=r.objects("paths", _read_path, min_items=1))


def _read_path(r: Reader) -> HTTPIngressPath:
    path_type = r.enum("pathType", PathType, REQUIRED)
    path = r.string("path")
    if path and not path.startswith("/"):
        r.fail("path", f"invalid value {quote(path)}: must be an absolute path")
    if path_type is not PathType.IMPLEMENTATION_SPECIFIC:
        if not path:
            r.fail("path", f"must be an absolute path for pathType {path_type.value}")
        for sequence in INVALID_PATH_SEQUENCES:
            if sequence in path:
                r.fail("path", f"invalid value {quote(path)}: must not contain '{sequence}'")
        for suffix in INVALID_PATH_SUFFIXES:
            if path.endswith(suffix):
                r.fail("path", f"invalid value {quote(path)}: cannot end with '{suffix}'")
    return HTTPIngressPath(path_type, r.obj("backend", _read_backend, REQUIRED), path)


def _read_backend(r: Reader) -> IngressBackend:
    backend = IngressBackend(
        service=r.obj("service", _read_service_backend),
        resource=r.obj("resource", _read_resource),
    )
    if backend.service is not None and backend.resource is not None:
        r.fail(None, "cannot set both resource and service backends")
    if backend.service is None and backend.resource is None:
        r.fail(None, "one backend must be specified: service or resource")
    return backend


def _read_service_backend(r: Reader) -> IngressServiceBackend:
    return IngressServiceBackend(
        name=r.string("name", REQUIRED, check=dns1035_label),
        port=r.obj("port", _read_port, REQUIRED),
    )


def _read_port(r: Reader) -> ServiceBackendPort:
    port = ServiceBackendPort(
        number=r.integer("number", minimum=1, maximum=65535),
        name=r.string("name", check=iana_svc_name),
    )
    if port.number is not None and port.name is not None:
        r.fail(None, "cannot set both port name & port number")
    if port.number is None and port.name is None:
        r.fail(None, "port name or number is required")
    return port


def _read_resource(r: Reader) -> TypedLocalObjectReference:
    return TypedLocalObjectReference(
        kind=r.string("kind", REQUIRED), name=r.string("name", REQUIRED),
        api_group=r.string("apiGroup"),
    )


def _read_status(r: Reader) -> IngressStatus:
    return IngressStatus(r.obj("loadBalancer", _read_lb, IngressLoadBalancerStatus()))


def _read_lb(r: Reader) -> IngressLoadBalancerStatus:
    return IngressLoadBalancerStatus(r.objects("ingress", _read_lb_ingress))


def _read_lb_ingress(r: Reader) -> IngressLoadBalancerIngress:
    return IngressLoadBalancerIngress(
        ip=r.string("ip", check=ip_address), hostname=r.string("hostname"),
        ports=r.objects("ports", _read_port_status),
    )


def _read_port_status(r: Reader) -> PortStatus:
    return PortStatus(
        r.integer("port", REQUIRED), r.string("protocol", REQUIRED), r.string("error")
    )


def read_ingress_class(r: Reader, metadata: ObjectMeta) -> IngressClass:
    return IngressClass(metadata, r.obj("spec", _read_class_spec, REQUIRED))


def _controller(value: str) -> str | None:
    if len(value) > MAX_CONTROLLER_LENGTH:
        return f"must be no more than {MAX_CONTROLLER_LENGTH} characters"
    return controller_name(value)


def _read_class_spec(r: Reader) -> IngressClassSpec:
    return IngressClassSpec(
        controller=r.string("controller", REQUIRED, check=_controller),
        parameters=r.obj("parameters", _read_parameters),
    )


def _read_parameters(r: Reader) -> IngressClassParametersReference:
    scope = r.string("scope")
    if scope is not None and scope not in ("Cluster", "Namespace"):
        r.fail("scope", f"unsupported value {quote(scope)} (supported: Cluster, Namespace)")
    namespace = r.string("namespace")
    if scope == "Namespace" and namespace is None:
        r.fail("namespace", "required when scope is Namespace")
    if scope != "Namespace" and namespace is not None:
        r.fail("namespace", "must be unset unless scope is Namespace")
    return IngressClassParametersReference(
        kind=r.string("kind", REQUIRED), name=r.string("name", REQUIRED),
        api_group=r.string("apiGroup"), scope=scope, namespace=namespace,
    )
