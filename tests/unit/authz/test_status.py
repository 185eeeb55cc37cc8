"""AuthorizationPolicy status (GEP-713 style): Accepted, or TargetNotFound; the transition
time holds while the status does."""

from __future__ import annotations

from datetime import UTC, datetime

from authz.status import policy_status
from tests.unit.authz.helpers import policy, rule

NOW = datetime(2026, 12, 6, 7, 0, tzinfo=UTC)
SERVICES = {("shop", "web")}


def test_accepted_says_where_it_is_enforced() -> None:
    l7 = policy("p", {"rules": [rule(operation={"paths": ["/a"]})]})
    [c] = policy_status(l7, SERVICES, set(), [], NOW)["conditions"]
    assert (c["type"], c["status"], c["reason"]) == ("Accepted", "True", "Accepted")
    assert c["message"] == ("enforced by the waypoint (the policy reads L7 attributes "
                            "(host, method, path, header, SNI))")
    assert c["lastTransitionTime"] == "2026-12-06T07:00:00Z"
    l4 = policy("p", {"rules": [rule(source={"namespaces": ["a"]})]})
    [c] = policy_status(l4, SERVICES, set(), [], NOW)["conditions"]
    assert c["message"] == "enforced in the kernel on each client's node (L4 attributes only)"


def test_a_missing_target_is_not_accepted() -> None:
    p = policy("p", {"targetRefs": [{"kind": "Service", "name": "db"},
                                    {"kind": "Service", "name": "web"},
                                    {"kind": "Gateway", "group": "gateway.networking.k8s.io", "name": "gw"}]})
    [c] = policy_status(p, SERVICES, set(), [], NOW)["conditions"]
    assert (c["status"], c["reason"]) == ("False", "TargetNotFound")
    assert c["message"] == "no Service shop/db, Gateway shop/gw: the policy applies to nothing there"
    [c] = policy_status(p, SERVICES | {("shop", "db")}, {("shop", "gw")}, [], NOW)["conditions"]
    assert c["status"] == "True"


def test_the_transition_time_holds_while_the_status_does() -> None:
    p = policy("p", {"rules": [{}]})
    before = [{"type": "Accepted", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}]
    [c] = policy_status(p, SERVICES, set(), before, NOW)["conditions"]
    assert c["lastTransitionTime"] == "2026-01-01T00:00:00Z"
    flipped = [{**before[0], "status": "False"}]
    [c] = policy_status(p, SERVICES, set(), flipped, NOW)["conditions"]
    assert c["lastTransitionTime"] == "2026-12-06T07:00:00Z"
