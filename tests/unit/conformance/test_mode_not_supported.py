"""The *NotSupported TLS cases' judgement (``conformance.cases.tls_status.mode_mismatch``):
upstream's expectation for an implementation without the mode, and its converse for one that
claims it (pure)."""

from __future__ import annotations

from typing import Any

from conformance.cases import all_cases
from conformance.cases.tls_status import mode_mismatch
from conformance.runner import plan_manifests


def _listener(name: str, accepted: tuple[str, str], conflicted: tuple[str, str] | None = None,
              attached: int = 0) -> dict[str, Any]:
    conditions = [{"type": "Accepted", "status": accepted[0], "reason": accepted[1]}]
    if conflicted is not None:
        conditions.append({"type": "Conflicted", "status": conflicted[0],
                           "reason": conflicted[1]})
    return {"name": name, "attachedRoutes": attached, "conditions": conditions}


OK = ("True", "Accepted")
NO_CONFLICT = ("False", "NoConflicts")
MIXED = ("mixed-terminate", "mixed-passthrough")


def test_a_claimed_mode_wants_its_listeners_accepted_and_not_conflicted() -> None:
    served = [_listener(n, OK, NO_CONFLICT, attached=1) for n in MIXED]
    assert mode_mismatch(served, MIXED, True, "ProtocolConflict") is None
    refused = [_listener("mixed-terminate", ("False", "ProtocolConflict"), ("True",
               "ProtocolConflict")), _listener("mixed-passthrough", OK, NO_CONFLICT)]
    assert "mixed-terminate Accepted ('False', 'ProtocolConflict')" in str(
        mode_mismatch(refused, MIXED, True, "ProtocolConflict"))
    conflicted = [_listener(n, OK, ("True", "HostnameConflict")) for n in MIXED]
    assert "want it accepted" in str(mode_mismatch(conflicted, MIXED, True, "ProtocolConflict"))
    assert mode_mismatch(served[:1], MIXED, True, "ProtocolConflict") == (
        "no status for listener mixed-passthrough")


def test_an_unclaimed_mode_wants_upstreams_refusal_with_no_route() -> None:
    refused = [_listener("terminate", ("False", "UnsupportedValue"))]
    assert mode_mismatch(refused, ("terminate",), False, "UnsupportedValue") is None
    accepted = [_listener("terminate", OK, NO_CONFLICT)]
    assert "want False UnsupportedValue" in str(
        mode_mismatch(accepted, ("terminate",), False, "UnsupportedValue"))
    wrong_reason = [_listener("terminate", ("False", "ProtocolConflict"))]
    assert mode_mismatch(wrong_reason, ("terminate",), False, "UnsupportedValue") is not None
    attached = [_listener("terminate", ("False", "UnsupportedValue"), attached=1)]
    assert "attachedRoutes 1" in str(
        mode_mismatch(attached, ("terminate",), False, "UnsupportedValue"))


def test_the_cases_use_the_shared_gateways_listeners_and_add_no_gateway() -> None:
    cases = {c.name: c for c in all_cases()}
    terminate = cases["TLSRouteListenerTerminateNotSupported"]
    mixed = cases["TLSRouteListenerMixedTerminationNotSupported"]
    assert terminate.features == ("Gateway", "TLSRoute") and not terminate.extended
    assert mixed.features == ("Gateway", "TLSRoute", "TLSRouteModeTerminate") and mixed.extended
    without = [c for c in all_cases() if c.name not in (terminate.name, mixed.name)]
    gateways = [o for o in plan_manifests(all_cases()) if o["kind"] == "Gateway"]
    assert len(gateways) == len([o for o in plan_manifests(without) if o["kind"] == "Gateway"])
    listeners = {(ls["name"], ls["port"], ls["tls"]["mode"]) for g in gateways
                 for ls in g["spec"]["listeners"] if ls["protocol"] == "TLS"}
    assert {("terminate", 8443, "Terminate"), ("mixed-terminate", 8883, "Terminate"),
            ("mixed-passthrough", 8883, "Passthrough")} <= listeners
