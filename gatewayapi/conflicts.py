"""HTTPRoute against GRPCRoute on one listener (GRPCRouteSpec.hostnames).

Spec: when a route of one of the two kinds attaches to a listener that already has a
route of the other kind and their hostnames intersect, exactly one of the two is accepted
there: the oldest (creationTimestamp), then the first by "{namespace}/{name}". The other
loses that listener; a parentRef left with no listener reports Accepted=False, reason
``RouteKindConflict`` (the spec names no reason; this one says what happened). Service
parents (GAMMA) have no such rule: both kinds stay, and the waypoint looks up GRPCRoutes
first for gRPC requests.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gatewayapi.attach import ListenerAttachment, ParentResult
from gatewayapi.hostnames import intersect
from gatewayapi.precedence import RouteOrder, route_order

if TYPE_CHECKING:
    from gatewayapi.analysis import RouteReport

CONFLICT_REASON = "RouteKindConflict"
_Slot = tuple[str, str, str]
"""(Gateway namespace, Gateway name, listener name)."""


def _order(report: RouteReport) -> RouteOrder:
    meta = report.route.metadata
    return route_order(meta.creation_timestamp, meta.namespace, meta.name)


def _overlap(a: ListenerAttachment, b: ListenerAttachment) -> bool:
    """Whether two attachments to one listener serve a hostname in common."""
    for pattern_a, _ in a.hostnames:
        for pattern_b, _ in b.hostnames:
            if pattern_a is None or pattern_b is None or intersect(pattern_a, pattern_b):
                return True
    return False


def resolve_kind_conflicts(reports: list[RouteReport]) -> None:
    """Drop the losing attachments in place (``reports`` as ``analyze`` builds them)."""
    by_slot: dict[_Slot, list[tuple[RouteReport, ParentResult, ListenerAttachment]]] = {}
    for report in reports:
        for parent in report.parents:
            for attachment in parent.listeners:
                gw = attachment.state.gateway.metadata
                slot = (gw.namespace, gw.name, attachment.state.listener.name)
                by_slot.setdefault(slot, []).append((report, parent, attachment))
    losers: dict[int, tuple[ParentResult, str]] = {}
    for entries in by_slot.values():
        entries.sort(key=lambda e: _order(e[0]))
        kept: list[tuple[RouteReport, ListenerAttachment]] = []
        for report, parent, attachment in entries:
            winner = next(
                (
                    other
                    for other, theirs in kept
                    if other.route.kind != report.route.kind and _overlap(attachment, theirs)
                ),
                None,
            )
            if winner is None:
                kept.append((report, attachment))
                continue
            parent.listeners.remove(attachment)
            meta = winner.route.metadata
            losers[id(parent)] = (
                parent,
                f"listener {attachment.state.listener.name} already serves these hostnames "
                f"for {winner.route.kind} {meta.namespace}/{meta.name}, which is older",
            )
    for parent, message in losers.values():
        if not parent.attached:
            parent.reason, parent.message = CONFLICT_REASON, message
