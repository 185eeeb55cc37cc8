"""Readers for core and discovery kinds: Namespace, Pod, Service, EndpointSlice, Secret,
ConfigMap."""

from __future__ import annotations

import base64
import binascii

from agent.model.convert_meta import read_labels
from agent.model.convert_podspec import (
    check_init_containers,
    check_mounts,
    read_env_from,
    read_env_var,
    read_volume,
    read_volume_mount,
)
from agent.model.convert_probe import read_probes
from agent.model.convert_security import read_security_context
from agent.model.core import (
    TLS_SECRET_TYPE,
    AddressType,
    ClientIPConfig,
    ConfigMap,
    Container,
    ContainerPort,
    Endpoint,
    EndpointConditions,
    EndpointPort,
    EndpointSlice,
    LoadBalancerIngress,
    LoadBalancerStatus,
    Namespace,
    ObjectReference,
    Pod,
    PodCondition,
    PodPhase,
    PodSpec,
    PodStatus,
    RestartPolicy,
    Secret,
    Service,
    ServicePort,
    ServiceSpec,
    ServiceStatus,
    ServiceType,
    SessionAffinity,
    SessionAffinityConfig,
    TrafficPolicy,
)
from agent.model.core_container import DnsPolicy
from agent.model.frozen import FrozenMap
from agent.model.meta import ConditionStatus, ObjectMeta, Protocol
from agent.model.reader import REQUIRED, Reader
from agent.model.validation import (
    config_key,
    dns1123_label,
    dns1123_subdomain,
    endpoint_ipv4,
    endpoint_ipv6,
    iana_svc_name,
    ip_address,
)

MIN_PORT, MAX_PORT = 1, 65535


def port_number(value: int) -> str | None:
    """Check for the integer half of an IntOrString port."""
    if not MIN_PORT <= value <= MAX_PORT:
        return f"must be between {MIN_PORT} and {MAX_PORT}, got {value}"
    return None


def read_namespace(r: Reader, metadata: ObjectMeta) -> Namespace:
    return Namespace(metadata=metadata)


# --- Pod -------------------------------------------------------------------------------


def read_pod(r: Reader, metadata: ObjectMeta) -> Pod:
    return Pod(
        metadata=metadata,
        spec=r.obj("spec", read_pod_spec, REQUIRED),
        status=r.obj("status", _read_pod_status, PodStatus()),
    )


def read_pod_spec(r: Reader) -> PodSpec:
    containers = r.objects("containers", _read_container, min_items=1)
    r.check_unique("containers", [c.name for c in containers], "name")
    init = r.objects("initContainers", _read_container)
    check_init_containers(r, init, {c.name for c in containers})
    volumes = r.objects("volumes", read_volume)
    r.check_unique("volumes", [v.name for v in volumes], "name")
    check_mounts(r, containers, volumes)
    check_mounts(r, init, volumes, "initContainers")
    return PodSpec(
        containers=containers,
        node_name=r.string("nodeName", check=dns1123_subdomain),
        node_selector=read_labels(r, "nodeSelector"),
        restart_policy=r.enum("restartPolicy", RestartPolicy, RestartPolicy.ALWAYS),
        service_account_name=_read_service_account(r),
        host_network=r.boolean("hostNetwork") or None,
        automount_service_account_token=r.boolean("automountServiceAccountToken"),
        dns_policy=r.enum("dnsPolicy", DnsPolicy),
        volumes=volumes,
        init_containers=init,
    )


def _read_service_account(r: Reader) -> str | None:
    """``serviceAccountName``, else its deprecated alias ``serviceAccount``: Kubernetes'
    v1 conversion reads the alias only when the name is empty (both validated)."""
    deprecated = r.string("serviceAccount", check=dns1123_subdomain)
    return r.string("serviceAccountName", check=dns1123_subdomain) or deprecated or None


def _read_container(r: Reader) -> Container:
    probes = read_probes(r)
    container = Container(
        name=r.string("name", REQUIRED, check=dns1123_label),
        image=r.string("image", ""),
        command=r.string_list("command"),
        args=r.string_list("args"),
        env=r.objects("env", read_env_var),
        ports=r.objects("ports", _read_container_port),
        volume_mounts=r.objects("volumeMounts", read_volume_mount),
        env_from=r.objects("envFrom", read_env_from),
        startup_probe=probes["startupProbe"],
        liveness_probe=probes["livenessProbe"],
        readiness_probe=probes["readinessProbe"],
        restart_policy=r.string("restartPolicy"),
        security_context=r.obj("securityContext", read_security_context),
    )
    r.check_unique("ports", [p.name for p in container.ports], "name")
    return container


def _read_container_port(r: Reader) -> ContainerPort:
    return ContainerPort(
        container_port=r.integer("containerPort", REQUIRED, minimum=MIN_PORT, maximum=MAX_PORT),
        name=r.string("name", check=iana_svc_name),
        protocol=r.enum("protocol", Protocol, Protocol.TCP),
    )


def _read_pod_status(r: Reader) -> PodStatus:
    return PodStatus(
        phase=r.enum("phase", PodPhase),
        pod_ip=r.string("podIP", check=ip_address),
        host_ip=r.string("hostIP", check=ip_address),
        conditions=r.objects("conditions", _read_pod_condition),
    )


def _read_pod_condition(r: Reader) -> PodCondition:
    return PodCondition(
        type=r.string("type", REQUIRED),
        status=r.enum("status", ConditionStatus, REQUIRED),
        reason=r.string("reason", ""),
        message=r.string("message", ""),
        last_transition_time=r.timestamp("lastTransitionTime"),
    )


# --- Service ---------------------------------------------------------------------------


def read_service(r: Reader, metadata: ObjectMeta) -> Service:
    return Service(
        metadata=metadata,
        spec=r.obj("spec", _read_service_spec, REQUIRED),
        status=r.obj("status", _read_service_status, ServiceStatus()),
    )


def _cluster_ip(value: str) -> str | None:
    if value in ("", "None"):
        return None
    return ip_address(value)


def _read_service_spec(r: Reader) -> ServiceSpec:
    service_type = r.enum("type", ServiceType, ServiceType.CLUSTER_IP)
    cluster_ip = r.string("clusterIP", check=_cluster_ip) or None
    headless = cluster_ip == "None"
    if headless and service_type is not ServiceType.CLUSTER_IP:
        r.fail("clusterIP", f'may only be "None" when type is ClusterIP, not {service_type}')
    external = service_type is ServiceType.EXTERNAL_NAME
    external_name = (
        r.string("externalName", REQUIRED, check=dns1123_subdomain)
        if external
        else r.string("externalName", check=dns1123_subdomain)
    )
    if external and cluster_ip is not None:
        r.fail("clusterIP", "must be empty when type is ExternalName")
    if external_name is not None and not external:
        r.fail("externalName", f"may only be set when type is ExternalName, not {service_type}")
    ports = r.objects("ports", _read_service_port, min_items=0 if headless or external else 1)
    for i, port in enumerate(ports):
        if len(ports) > 1 and port.name is None:
            r.fail(f"ports[{i}].name", "required when the Service has more than one port")
        if port.node_port is not None and service_type is ServiceType.CLUSTER_IP:
            r.fail(f"ports[{i}].nodePort", "may not be used when type is ClusterIP")
    r.check_unique("ports", [p.name for p in ports], "name")
    r.check_unique("ports", [f"{p.port}/{p.protocol}" for p in ports], "port")

    affinity = r.enum("sessionAffinity", SessionAffinity, SessionAffinity.NONE)
    config = r.obj("sessionAffinityConfig", _read_affinity_config)
    if affinity is SessionAffinity.CLIENT_IP:
        if config is None or config.client_ip is None:
            config = SessionAffinityConfig(client_ip=ClientIPConfig())
    elif config is not None:
        r.fail("sessionAffinityConfig", 'must not be set when sessionAffinity is "None"')

    reachable = service_type in (ServiceType.NODE_PORT, ServiceType.LOAD_BALANCER)
    policy = r.enum("externalTrafficPolicy", TrafficPolicy)
    if policy is not None and not reachable:
        r.fail("externalTrafficPolicy", "may only be set when type is NodePort or LoadBalancer")
    if reachable and policy is None:
        policy = TrafficPolicy.CLUSTER  # the API server's default
    health_port = r.integer("healthCheckNodePort", minimum=MIN_PORT, maximum=MAX_PORT)
    if health_port is not None and not (
        service_type is ServiceType.LOAD_BALANCER and policy is TrafficPolicy.LOCAL
    ):
        r.fail(
            "healthCheckNodePort",
            'may only be set when type is LoadBalancer and externalTrafficPolicy is "Local"',
        )
    lb_class = r.string("loadBalancerClass")
    lb_ip = r.string("loadBalancerIP", check=lambda v: ip_address(v) if v else None) or None
    for key, value in (("loadBalancerClass", lb_class), ("loadBalancerIP", lb_ip)):
        if value is not None and service_type is not ServiceType.LOAD_BALANCER:
            r.fail(key, "may only be set when type is LoadBalancer")
    return ServiceSpec(
        type=service_type,
        cluster_ip=cluster_ip,
        ports=ports,
        selector=read_labels(r, "selector"),
        session_affinity=affinity,
        session_affinity_config=config,
        external_traffic_policy=policy,
        health_check_node_port=health_port,
        load_balancer_class=lb_class,
        load_balancer_ip=lb_ip,
        external_name=external_name,
    )


def _read_service_status(r: Reader) -> ServiceStatus:
    return ServiceStatus(
        load_balancer=r.obj("loadBalancer", _read_lb_status, LoadBalancerStatus())
    )


def _read_lb_status(r: Reader) -> LoadBalancerStatus:
    return LoadBalancerStatus(ingress=r.objects("ingress", _read_lb_ingress))


def _read_lb_ingress(r: Reader) -> LoadBalancerIngress:
    entry = LoadBalancerIngress(
        ip=r.string("ip", check=ip_address),
        hostname=r.string("hostname", check=dns1123_subdomain),
        ip_mode=r.string("ipMode", check=_ip_mode),
    )
    if entry.ip is None and entry.hostname is None:
        r.fail("ip", "one of ip or hostname is required")
    if entry.ip_mode is not None and entry.ip is None:
        r.fail("ipMode", "may only be set with ip")
    return entry


def _ip_mode(value: str) -> str | None:
    return None if value in ("VIP", "Proxy") else f'unsupported value "{value}": "VIP" or "Proxy"'


def _read_service_port(r: Reader) -> ServicePort:
    port = r.integer("port", REQUIRED, minimum=MIN_PORT, maximum=MAX_PORT)
    return ServicePort(
        port=port,
        target_port=r.int_or_string(
            "targetPort", port, int_check=port_number, str_check=iana_svc_name
        ),
        name=r.string("name", check=dns1123_label),
        protocol=r.enum("protocol", Protocol, Protocol.TCP),
        app_protocol=r.string("appProtocol"),
        node_port=r.integer("nodePort", minimum=MIN_PORT, maximum=MAX_PORT),
    )


def _read_affinity_config(r: Reader) -> SessionAffinityConfig:
    return SessionAffinityConfig(client_ip=r.obj("clientIP", _read_client_ip))


def _read_client_ip(r: Reader) -> ClientIPConfig:
    timeout = r.integer("timeoutSeconds", 10800, minimum=1, maximum=86400)
    return ClientIPConfig(timeout_seconds=timeout)


# --- EndpointSlice ---------------------------------------------------------------------

_ADDRESS_CHECKS = {
    AddressType.IPV4: endpoint_ipv4,
    AddressType.IPV6: endpoint_ipv6,
    AddressType.FQDN: dns1123_subdomain,
}


def read_endpoint_slice(r: Reader, metadata: ObjectMeta) -> EndpointSlice:
    address_type = r.enum("addressType", AddressType, REQUIRED)

    def read_endpoint(e: Reader) -> Endpoint:
        return Endpoint(
            addresses=e.string_list(
                "addresses", check=_ADDRESS_CHECKS[address_type], min_items=1, max_items=100
            ),
            conditions=e.obj("conditions", _read_endpoint_conditions, EndpointConditions()),
            hostname=e.string("hostname", check=dns1123_label),
            node_name=e.string("nodeName", check=dns1123_subdomain),
            zone=e.string("zone"),
            target_ref=e.obj("targetRef", _read_object_reference),
        )

    ports = r.objects("ports", _read_endpoint_port, max_items=100)
    r.check_unique("ports", [p.name for p in ports], "name")
    return EndpointSlice(
        metadata=metadata,
        address_type=address_type,
        endpoints=r.objects("endpoints", read_endpoint, max_items=1000),
        ports=ports,
    )


# At most 27 distinct values: shared, not one per endpoint (5 MB at 100,000 endpoints);
# convert_fast reads it directly (a dict lookup, not a call, per endpoint).
SHARED_CONDITIONS: dict[tuple[bool | None, bool | None, bool | None], EndpointConditions] = {}


def _read_endpoint_conditions(r: Reader) -> EndpointConditions:
    return shared_conditions((r.boolean("ready"), r.boolean("serving"), r.boolean("terminating")))


def shared_conditions(key: tuple[bool | None, bool | None, bool | None]) -> EndpointConditions:
    """The one value of these (ready, serving, terminating) conditions (also convert_fast's)."""
    conditions = SHARED_CONDITIONS.get(key)
    if conditions is None:
        conditions = SHARED_CONDITIONS[key] = EndpointConditions(*key)
    return conditions


def _read_object_reference(r: Reader) -> ObjectReference:
    return ObjectReference(
        kind=r.string("kind"),
        namespace=r.string("namespace", check=dns1123_label),
        name=r.string("name"),
        uid=r.string("uid"),
    )


def _read_endpoint_port(r: Reader) -> EndpointPort:
    return EndpointPort(
        name=r.string("name", "", check=lambda v: dns1123_label(v) if v else None),
        port=r.integer("port", minimum=MIN_PORT, maximum=MAX_PORT),
        protocol=r.enum("protocol", Protocol, Protocol.TCP),
        app_protocol=r.string("appProtocol"),
    )


# --- Secret ----------------------------------------------------------------------------


def read_secret(r: Reader, metadata: ObjectMeta) -> Secret:
    secret_type = r.string("type", "Opaque")
    data = {}
    for key, text in r.string_map("data", key_check=config_key).items():
        try:
            # Go's base64 decoder, which Kubernetes uses, skips line breaks.
            data[key] = base64.b64decode(text.replace("\n", "").replace("\r", ""), validate=True)
        except binascii.Error:
            r.fail(f"data[{key}]", "invalid base64")
    for key, text in r.string_map("stringData", key_check=config_key).items():
        data[key] = text.encode()
    if secret_type == TLS_SECRET_TYPE:
        for required in ("tls.crt", "tls.key"):
            if required not in data:
                r.fail(f"data[{required}]", f"required for type {TLS_SECRET_TYPE}")
    return Secret(metadata=metadata, type=secret_type, data=FrozenMap(data))


# --- ConfigMap -------------------------------------------------------------------------


def read_config_map(r: Reader, metadata: ObjectMeta) -> ConfigMap:
    # binaryData is not kept, but its keys are checked: each names a file in a volume.
    r.string_map("binaryData", key_check=config_key)
    return ConfigMap(metadata=metadata, data=r.string_map("data", key_check=config_key))
