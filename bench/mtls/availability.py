"""Whether the mTLS mode can be measured in this build, and if not, why (pure).

The benchmark never fakes the tunnel: it reports `mtls` as "not available" with a reason
unless both hold after enrolling the two namespaces:

1. SVIDs: each node's agent health report lists a `svids` entry for the ServiceAccount of
   the benchmark's pod on that node (node1: the client's, node2: nginx's);
2. the tunnel carries the traffic: while a download through the `plain` Service is in
   flight, node2's network namespace holds an established TCP connection on the HBONE
   port (15008).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from identity.hbone import HBONE_PORT


def svid_ids(health: Mapping[str, Any]) -> set[str] | None:
    """The SPIFFE IDs a node's agent reports holding; None when it reports no `svids` at
    all (an agent without the SVID manager)."""
    svids = health.get("svids")
    if not isinstance(svids, list):
        return None
    return {str(s.get("spiffe_id")) for s in svids if isinstance(s, dict)}


def svid_gap(health: Mapping[str, Mapping[str, Any]], wanted: Mapping[str, str]) -> str | None:
    """None when every node in `wanted` (node -> SPIFFE ID) holds its SVID, else the reason
    (the first node that does not), with the agent's own words when it gave any
    (`svid_error`: the SVID manager did not start; `svid_failures`: refused requests)."""
    for node, spiffe_id in sorted(wanted.items()):
        report = health.get(node)
        if not report:
            return f"the agent on {node} wrote no health report"
        held = svid_ids(report)
        if held is None:
            if report.get("svid_error"):
                return f"the agent on {node} runs without SVIDs: {report['svid_error']}"
            return (
                f"the agent on {node} reports no `svids` in its health report: this build's "
                "agent does not fetch SVIDs (issue 11 item 2; in the lab, `tulle agent "
                "--ca-address`)"
            )
        if spiffe_id not in held:
            have = ", ".join(sorted(held)) or "none"
            failures = [
                f for f in report.get("svid_failures") or []
                if isinstance(f, dict) and f.get("spiffe_id") == spiffe_id
            ]  # fmt: skip
            why = f"; last failure: {failures[0].get('reason')}" if failures else ""
            return f"the agent on {node} holds no SVID for {spiffe_id} (it holds: {have}){why}"
    return None


def _split(endpoint: str) -> tuple[str, int] | None:
    host, sep, port = endpoint.rpartition(":")
    if not sep or not port.isdigit():
        return None
    return host.strip("[]"), int(port)


def established(ss_output: str) -> list[tuple[tuple[str, int], tuple[str, int]]]:
    """(local, peer) endpoints of `ss -Htn state established` lines (columns: Recv-Q,
    Send-Q, local, peer[, process])."""
    out = []
    for line in ss_output.splitlines():
        fields = line.split()
        if len(fields) < 4:
            continue
        local, peer = _split(fields[2]), _split(fields[3])
        if local is not None and peer is not None:
            out.append((local, peer))
    return out


def tunnel_peers(ss_output: str, port: int = HBONE_PORT) -> list[str]:
    """Peer addresses of the established connections accepted on `port` (in node2 only
    node1's waypoint has a reason to connect there; which of node1's addresses it uses is
    the waypoint's choice, so any peer counts)."""
    return sorted(peer[0] for local, peer in established(ss_output) if local[1] == port)


def tunnel_gap(peers: list[str], attempts: int, port: int = HBONE_PORT) -> str | None:
    if peers:
        return None
    return (
        f"no TCP connection on node2's port {port} during {attempts} slow download(s) "
        "through the plain Service: enrolled traffic is not redirected into an HBONE "
        "tunnel in this build (issue 11 items 4-5)"
    )
