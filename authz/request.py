"""What the evaluator knows of one request (pure data): the peer and what it asks for."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from agent.model.frozen import EMPTY, FrozenMap


@dataclass(frozen=True, slots=True)
class Peer:
    """The caller. ``principal`` is its SPIFFE ID without "spiffe://"
    (``cluster.local/ns/shop/sa/web``), as Istio's principals are written; None when the
    caller has no workload identity (not a pod this node knows): then principal, namespace
    and ServiceAccount rules do not match it, and their not-forms do."""

    ip: str
    principal: str | None = None
    namespace: str | None = None
    service_account: str | None = None

    @classmethod
    def of_pod(cls, ip: str, trust_domain: str, namespace: str, service_account: str) -> Peer:
        account = service_account or "default"
        return cls(ip, f"{trust_domain}/ns/{namespace}/sa/{account}", namespace, account)


@dataclass(frozen=True, slots=True)
class Request:
    """An HTTP request as the waypoint routed it. ``port`` is the destination workload's
    port; ``path`` excludes the query; ``headers`` are keyed by lower-case name. For an L4
    connection, only ``peer``, ``destination_ip`` and ``port`` mean anything (``l7``
    False): see ``evaluate``."""

    peer: Peer
    destination_ip: str = ""
    port: int = 0
    host: str = ""
    method: str = ""
    path: str = ""
    headers: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: EMPTY)
    sni: str = ""
    l7: bool = True

    @staticmethod
    def headers_of(pairs: list[tuple[str, str]]) -> FrozenMap[str, tuple[str, ...]]:
        out: dict[str, list[str]] = {}
        for name, value in pairs:
            out.setdefault(name.lower(), []).append(value)
        return FrozenMap({k: tuple(v) for k, v in out.items()})
