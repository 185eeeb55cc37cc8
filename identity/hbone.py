"""HBONE's numbers, shared by the datapath (which redirects to the tunnel), the waypoint (which
carries it) and the lab (which wires both). Pure constants: what Istio's HBONE documentation
fixes and what Tulle chose beside it.
"""

from __future__ import annotations

HBONE_PORT = 15008
"""Where a node's waypoint accepts mutual-TLS HTTP/2 CONNECT tunnels from other waypoints
(Istio's HBONE port)."""

TUNNEL_OUTBOUND_PORT = 15007
"""Where a node's waypoint accepts an enrolled pod's TCP connection that the kernel redirected
for tunnelling (DNAT to the waypoint address, original destination in ``l7_orig_dst_v1``, as
for L7). Tulle's choice: 15001 stays the L7 listener."""

ALPN_H2 = "h2"
"""The one ALPN protocol a tunnel's TLS 1.3 handshake offers and accepts."""
