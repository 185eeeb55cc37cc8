"""Encryption metrics: encrypted flows, and the mTLS tunnels the waypoints refused.

Fed by the same flows as the rest of `FlowMetrics` (the waypoint's tunnel events arrive as
flows through the intake, `agent.flows.tunnelflow`):

- ``tulle_encrypted_flows_total{type,subtype,verdict}``: flows with ``IP.encrypted`` (they
  rode an mTLS tunnel), labelled as ``tulle_flows_processed_total`` is (Trace/Drop, the
  observation point ``to-crypto``/``from-crypto`` for the waypoint's, FORWARDED/DROPPED);
  the share of encrypted traffic is this over ``tulle_flows_processed_total``;
- ``tulle_tunnel_refused_total{reason,side}``: DROPPED tunnel flows by drop reason name
  (MTLS_UNKNOWN_CA, MTLS_CERT_EXPIRED, MTLS_WRONG_IDENTITY, TUNNEL_*…) and by the side that
  refused (client: the sending waypoint, server: the receiving one).

Both take a handful of fixed values per label (reasons come from ``bpf/lib/drop.h``), and
the series caps of `agent.metrics.config` bound them anyway.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from agent.flows.flow import Flow, TunnelInfo
from agent.metrics.series import Series

ENCRYPTION_HELP = {
    "encrypted_flows": "Encrypted flows (IP.encrypted: they rode an mTLS tunnel), by event "
    "type, subtype and verdict.",
    "tunnel_refused": "mTLS tunnels refused (handshakes and CONNECTs), by drop reason and the "
    "side that refused.",
}


class EncryptionSeries:
    """The two families; `observe` is called under `FlowMetrics`' lock."""

    def __init__(self, series: Callable[..., Series | None]) -> None:
        self.encrypted = series("encrypted_flows")
        self.refused = series("tunnel_refused")

    def observe(
        self,
        flow: Flow,
        raw: tuple[Any, ...],
        labels: Callable[..., tuple[str, str, str, str]],
        n: int,
    ) -> None:
        """``raw``: the flow's flows_processed key; ``labels(*raw)`` its (type, subtype,
        verdict, protocol), computed only for a key not seen yet."""
        s = self.encrypted
        if s is not None:
            cell = s.cache.get(raw)
            if cell is None:
                cell = s.admit(raw, labels(*raw)[:3])
            cell[0] += n
        tunnel = flow.tulle.tunnel if flow.tulle is not None else None
        if tunnel is not None and flow.drop_reason_desc and self.refused is not None:
            self._refused(flow.drop_reason_desc, tunnel, n)

    def _refused(self, reason: str, tunnel: TunnelInfo, n: int) -> None:
        s = self.refused
        assert s is not None
        raw = (reason, tunnel.side)
        cell = s.cache.get(raw)
        if cell is None:
            cell = s.admit(
                raw, (reason, tunnel.side if tunnel.side in ("client", "server") else "unknown")
            )
        cell[0] += n

    def families(self) -> list[tuple[str, Series | None]]:
        return [("encrypted_flows", self.encrypted), ("tunnel_refused", self.refused)]
