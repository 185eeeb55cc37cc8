"""What a lab container runs, from its Pod spec (pure): argv, environment, resolv.conf."""

from __future__ import annotations

import ipaddress
import os

from agent.model.core import Container, Pod
from lab.topology import CLUSTER_DOMAIN, DNS_ADDRESS, NodePlan

DEFAULT_ECHO_PORT = 8080


def container_argv(
    container: Container, python: str
) -> tuple[tuple[str, ...], tuple[tuple[int, str], ...]]:
    """The process a container runs, and the ports that make it ready.

    A container without a command runs the built-in echo server (the lab's default
    image) on every declared TCP containerPort, or on 8080 when none is declared.
    """
    declared = tuple((p.container_port, p.protocol) for p in container.ports)
    if container.command:
        return tuple(container.command) + tuple(container.args), declared
    tcp_ports = [port for port, proto in declared if proto == "TCP"] or [DEFAULT_ECHO_PORT]
    argv = [python, "-m", "lab.echo.server"]
    for port in tcp_ports:
        argv += ["--port", str(port)]
    ready_ports = declared or ((DEFAULT_ECHO_PORT, "TCP"),)
    return tuple(argv) + tuple(container.args), ready_ports


def pod_env(
    pod: Pod, ip: ipaddress.IPv4Address | None, node: NodePlan, container: Container
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
    for var in container.env:
        env[var.name] = var.value
    return env


def resolv_conf(namespace: str) -> str:
    domain = CLUSTER_DOMAIN
    return (
        f"nameserver {DNS_ADDRESS}\n"
        f"search {namespace}.svc.{domain} svc.{domain} {domain}\n"
        "options ndots:5\n"
    )
