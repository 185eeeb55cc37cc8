"""The one translation from the waypoint's L7 record (`agent.flows.l7record`) to a `Flow`.

A common request's split stays its row of clock readings on the flow, as bytes
(``TulleInfo.request_parts``) until a reader asks for it (``TulleInfo.request``); the
metrics fold those readings in batches (`agent.metrics.split`), so a flow nobody reads
costs no split arithmetic of its own.
"""

from __future__ import annotations

import random

from agent.flows.flow import (
    HTTP,
    IP,
    TCP,
    Endpoint,
    EventType,
    Flow,
    FlowType,
    HTTPHeader,
    IPVersion,
    L7Type,
    Layer7,
    Policy,
    TulleInfo,
    Verdict,
)
from agent.flows.l7record import AUTHZ_DROPS, GRPC_STATUS, L7Record
from agent.flows.names import EVENT_L7
from agent.flows.policyjson import authorization_policy, network_policy
from agent.flows.reqsplit import PARTS_WIDTH, split

_L7_EVENT = EventType(EVENT_L7)


class L7FlowBuilder:
    """Builds flows from records; caches IP pairs and numbers flows with UUID-shaped ids (a
    random prefix per builder mixed with a counter: no urandom call per flow)."""

    def __init__(self, node_name: str = "") -> None:
        self.node_name = node_name
        self._ips: dict[tuple[str, str, bool], IP] = {}
        bits = random.getrandbits
        self._uuid_prefix = f"{bits(32):08x}-{bits(16):04x}-4{bits(12):03x}"
        self._uuid_node = random.getrandbits(48)
        self._seq = 0
        self._policies: dict[tuple[bool, tuple[str, ...]], tuple[Policy, ...]] = {}

    def _named(self, names: tuple[str, ...], authz: bool = False) -> tuple[Policy, ...]:
        """Policy objects for names (NetworkPolicies, or AuthorizationPolicies), built once
        per distinct list (few per cluster)."""
        if not names:
            return ()
        found = self._policies.get((authz, names))
        if found is None:
            if len(self._policies) > 4096:
                self._policies.clear()
            make = authorization_policy if authz else network_policy
            found = self._policies[(authz, names)] = tuple(make(n) for n in names)
        return found

    def flow(self, r: L7Record) -> Flow:
        when, latency, code, method, url, protocol, route, rule, backend, drop, client, local, \
            summary, marks, names = r[:15]
        tunnel = r[15] if len(r) > 15 else None  # type: ignore[misc]
        grpc = r[16] if len(r) > 16 else None  # type: ignore[misc]
        key = (client[0], local[0], tunnel is not None)
        ip = self._ips.get(key)
        if ip is None:
            if len(self._ips) > 4096:
                self._ips.clear()
            v6 = ":" in client[0]
            ip = self._ips[key] = IP(client[0], local[0], IPVersion.IPv6 if v6 else IPVersion.IPv4,
                                     encrypted=tunnel is not None)
        self._seq += 1
        # AUDIT AuthorizationPolicies that matched a served request (a denied one is DROPPED:
        # the denial decided what the client saw).
        audited = names[2] if names and len(names) > 2 and not drop else ()
        return Flow(
            time=when,
            uuid=f"{self._uuid_prefix}-{0x8000 | (self._seq >> 48) & 0x3FFF:04x}-"
            f"{(self._uuid_node ^ self._seq) & 0xFFFFFFFFFFFF:012x}",
            verdict=Verdict.DROPPED if drop else Verdict.AUDIT if audited else Verdict.FORWARDED,
            drop_reason_desc=drop,
            ip=ip,
            l4=TCP(client[1], local[1]),
            type=FlowType.L7,
            node_name=self.node_name,
            l7=Layer7(L7Type.RESPONSE, latency, HTTP(
                code, method, url, protocol,
                () if grpc is None else (HTTPHeader(GRPC_STATUS, str(grpc)),))),
            event_type=_L7_EVENT,
            # The record names the client as source: a response recorded client -> server,
            # so metrics and the service map read the workload pair the right way round.
            is_reply=False,
            summary=summary,
            tulle=TulleInfo(duration_ns=latency, route=route, rule=rule, backend=backend,
                            # the common request's row (bytes, split when read) kept
                            # as it is; marks split now
                            request_parts=marks if type(marks) is bytes
                            else (marks if len(marks) == PARTS_WIDTH else split(latency, marks))
                            if type(marks) is tuple else None),
            # Both sides were judged by the waypoint (policy_waypoint.py); a request that
            # NetworkPolicy denied names none (it has no deny rules); one an
            # AuthorizationPolicy denied names it on the ingress side (the server's policy).
            egress_allowed_by=self._named(names[0]) if names and drop not in AUTHZ_DROPS else (),
            ingress_allowed_by=self._named(names[1]) if names and drop not in AUTHZ_DROPS else (),
            # An audited request names its AUDIT policies where Cilium's parser names the
            # policies of an AUDIT verdict: ``*_denied_by``.
            ingress_denied_by=self._named(names[1], True) if names and drop in AUTHZ_DROPS
            else self._named(audited, True),
            # The identities the tunnel asserted (the enrichment adds the pods around them).
            source=Endpoint(spiffe_id=tunnel[0]) if tunnel else None,
            destination=Endpoint(spiffe_id=tunnel[1]) if tunnel else None,
        )
