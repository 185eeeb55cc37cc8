"""What a lab container runs, from its Pod spec (pure): argv, environment (the downward
API's ``fieldRef``, Secret and ConfigMap keys as lab.envsource resolved them, and ``$(VAR)``
references, as a kubelet expands them), resolv.conf."""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping

from agent.model.core import Container, Pod
from lab.envsource import ResolvedEnv
from lab.topology import CLUSTER_DOMAIN, DNS_ADDRESS, NodePlan

DEFAULT_ECHO_PORT = 8080
_SUBSCRIPT = re.compile(r"^metadata\.(labels|annotations)\['([^']+)'\]$")


def container_argv(
    container: Container, python: str
) -> tuple[tuple[str, ...], tuple[tuple[int, str], ...]]:
    """The process a container runs, and the ports that make it ready.

    A container without a command runs the built-in echo server (the lab's default
    image) on every declared TCP containerPort, or on 8080 when none is declared.
    """
    declared = tuple((p.container_port, p.protocol) for p in container.ports)
    if container.command:  # the kubelet expands $(VAR) in it (expand)
        return tuple(container.command) + tuple(container.args), declared
    tcp_ports = [port for port, proto in declared if proto == "TCP"] or [DEFAULT_ECHO_PORT]
    argv = [python, "-m", "lab.echo.server"]
    for port in tcp_ports:
        argv += ["--port", str(port)]
    ready_ports = declared or ((DEFAULT_ECHO_PORT, "TCP"),)
    return tuple(argv) + tuple(container.args), ready_ports


def pod_env(
    pod: Pod, ip: ipaddress.IPv4Address | None, node: NodePlan, container: Container,
    sources: ResolvedEnv | None = None,
) -> dict[str, str]:
    """`ip` None: not known yet (CNI ADD still running); the kubelet sets POD_IP after it."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "HOME": "/root",
        "LANG": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",
        "POD_NAME": pod.metadata.name,
        "NAMESPACE": pod.metadata.namespace,
        "POD_NAMESPACE": pod.metadata.namespace,
        "POD_IP": "" if ip is None else str(ip),
        "NODE_NAME": node.name,
        "TULLE_LAB": os.environ.get("TULLE_LAB", ""),
        "HOSTNAME": pod.metadata.name,
    }
    env.update(declared_env(pod, ip, node, container, sources))
    return env


def field_value(pod: Pod, path: str, ip: ipaddress.IPv4Address | None, node: NodePlan) -> str:
    """A downward-API field (the paths the model admits for env vars); the pod's IP is ""
    until it is known, the node's address is the host IP."""
    meta = pod.metadata
    subscript = _SUBSCRIPT.match(path)
    if subscript:
        source = meta.labels if subscript[1] == "labels" else meta.annotations
        return source.get(subscript[2], "")
    values = {
        "metadata.name": meta.name,
        "metadata.namespace": meta.namespace,
        "metadata.uid": meta.uid or "",
        "spec.nodeName": node.name,
        "spec.serviceAccountName": pod.spec.service_account,
        "status.hostIP": str(node.fabric_ip),
        "status.hostIPs": str(node.fabric_ip),
        "status.podIP": "" if ip is None else str(ip),
        "status.podIPs": "" if ip is None else str(ip),
    }
    return values.get(path, "")


def declared_env(
    pod: Pod, ip: ipaddress.IPv4Address | None, node: NodePlan, container: Container,
    sources: ResolvedEnv | None = None,
) -> dict[str, str]:
    """The container's own variables: ``envFrom``'s first, then ``env`` in order, each
    value expanded against those before it (a kubelet's rule). Secret and ConfigMap keys
    come from ``sources`` (lab.envsource, resolved at each start; None: not yet, ""); an
    optional key that is missing leaves its variable unset; ``resourceFieldRef`` is not
    emulated and gives ""."""
    env: dict[str, str] = dict(sources.env_from) if sources is not None else {}
    for i, var in enumerate(container.env):
        src = var.value_from
        if src is None:
            env[var.name] = expand(var.value, env)
        elif src.field_ref is not None:
            env[var.name] = field_value(pod, src.field_ref.field_path, ip, node)
        elif sources is not None and i in sources.keys:
            value = sources.keys[i]
            if value is not None:
                env[var.name] = value
        else:
            env[var.name] = ""
    return env


def pod_ip_vars(container: Container) -> tuple[str, ...]:
    """The variables that hold the pod's IP, set once the sandbox has one (CNI ADD)."""
    return tuple(
        v.name for v in container.env
        if v.value_from and v.value_from.field_ref
        and v.value_from.field_ref.field_path in ("status.podIP", "status.podIPs")
    )


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion: a defined variable is replaced, an undefined
    reference stays as written, ``$$`` is a literal ``$``."""
    out: list[str] = []
    i = 0
    while i < len(text):
        if text.startswith("$$", i):
            out.append("$")
            i += 2
            continue
        if text.startswith("$(", i) and (end := text.find(")", i + 2)) != -1:
            name = text[i + 2:end]
            out.append(env[name] if name in env else text[i:end + 1])
            i = end + 1
            continue
        out.append(text[i])
        i += 1
    return "".join(out)


def resolv_conf(namespace: str) -> str:
    domain = CLUSTER_DOMAIN
    return (
        f"nameserver {DNS_ADDRESS}\n"
        f"search {namespace}.svc.{domain} svc.{domain} {domain}\n"
        "options ndots:5\n"
    )
