"""Policies written as Istio users write them (dicts), read through the real converter."""

from __future__ import annotations

from typing import Any

from agent.model.authz import AuthorizationPolicy
from agent.model.convert import from_dict
from authz import Peer, Request

TD = "cluster.local"


def policy(name: str, spec: dict[str, Any], namespace: str = "shop") -> AuthorizationPolicy:
    found = from_dict(
        {
            "apiVersion": "security.tulle.io/v1",
            "kind": "AuthorizationPolicy",
            "metadata": {"name": name, "namespace": namespace},
            "spec": spec,
        }
    )
    assert isinstance(found, AuthorizationPolicy)
    return found


def rule(**parts: Any) -> dict[str, Any]:
    """rule(source={...}, operation={...}, when=[...]) as one Istio rule."""
    out: dict[str, Any] = {}
    if "source" in parts:
        out["from"] = [{"source": parts["source"]}]
    if "operation" in parts:
        out["to"] = [{"operation": parts["operation"]}]
    if "when" in parts:
        out["when"] = parts["when"]
    return out


def request(
    *,
    ns: str | None = "front",
    sa: str = "web",
    ip: str = "10.1.0.5",
    method: str = "GET",
    path: str = "/",
    host: str = "api.shop",
    port: int = 8080,
    headers: list[tuple[str, str]] | None = None,
    l7: bool = True,
    sni: str = "",
) -> Request:
    peer = Peer(ip) if ns is None else Peer.of_pod(ip, TD, ns, sa)
    return Request(
        peer=peer,
        destination_ip="10.2.0.9",
        port=port,
        host=host,
        method=method,
        path=path,
        headers=Request.headers_of(headers or []),
        sni=sni,
        l7=l7,
    )
