"""Upstream's Gateway listener status comparison (gatewayListenersMatch), as the
TLSRouteListenerPassthroughSupportedKinds case uses it (pure)."""

from __future__ import annotations

import copy
from typing import Any

from conformance.cases.tls_status import PASSTHROUGH_LISTENERS, listeners_mismatch

GOOD: list[dict[str, Any]] = [{
    "name": "tls-passthrough", "attachedRoutes": 0,
    "supportedKinds": [{"group": "gateway.networking.k8s.io", "kind": "TLSRoute"}],
    "conditions": [
        {"type": "Accepted", "status": "True", "reason": "Accepted"},
        {"type": "ResolvedRefs", "status": "False", "reason": "InvalidRouteKinds"},
    ],
}]


def _with(**changes: Any) -> list[dict[str, Any]]:
    out = copy.deepcopy(GOOD)
    out[0].update(changes)
    return out


def test_the_expected_status_matches_with_more_conditions_and_kinds() -> None:
    assert listeners_mismatch(PASSTHROUGH_LISTENERS, GOOD) is None
    more = _with(supportedKinds=[{"kind": "TLSRoute"}, {"group": "x.example", "kind": "Extra"}])
    assert listeners_mismatch(PASSTHROUGH_LISTENERS, more) is None  # group left out: Gateway API


def test_each_difference_is_named() -> None:
    assert listeners_mismatch(PASSTHROUGH_LISTENERS, GOOD * 2) == "2 listeners, want 1"
    assert "no status for listener" in str(listeners_mismatch(PASSTHROUGH_LISTENERS,
                                                             _with(name="other")))
    tcp_only = _with(supportedKinds=[{"kind": "TCPRoute"}])
    assert "supportedKinds" in str(listeners_mismatch(PASSTHROUGH_LISTENERS, tcp_only))
    assert "attachedRoutes 1" in str(listeners_mismatch(PASSTHROUGH_LISTENERS,
                                                        _with(attachedRoutes=1)))
    resolved = _with(conditions=[{"type": "ResolvedRefs", "status": "True",
                                  "reason": "ResolvedRefs"}])
    assert "ResolvedRefs True ResolvedRefs, want False InvalidRouteKinds" in str(
        listeners_mismatch(PASSTHROUGH_LISTENERS, resolved))


def test_kinds_where_none_are_expected_do_not_match() -> None:
    expected = [{**PASSTHROUGH_LISTENERS[0], "supportedKinds": []}]
    assert "supportedKinds" in str(listeners_mismatch(expected, GOOD))
