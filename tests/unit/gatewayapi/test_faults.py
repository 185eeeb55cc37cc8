"""Fault injection from an HTTPRoute ExtensionRef filter naming a policy.tulle.io HTTPFault:
the decision at its percentages within a binomial bound (seeded draws), the abort's answer
over HTTP and gRPC, and how references resolve (or answer 500 with ResolvedRefs False)."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime
from typing import Any

import pytest

from agent.model.convert import from_dict
from agent.model.fault import HTTPFault
from gatewayapi import Answer, compute_status
from gatewayapi.faults import FAULT_BODY, Fault
from tests.unit.gatewayapi.helpers import (
    PARENT,
    backend,
    draws,
    forward,
    inputs,
    request,
    respond,
    route,
    tables,
)


def http_fault(name: str = "f", namespace: str = "default", **spec: Any) -> HTTPFault:
    obj = from_dict({
        "apiVersion": "policy.tulle.io/v1alpha1",
        "kind": "HTTPFault",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    })
    assert isinstance(obj, HTTPFault)
    return obj


def faulted_route(name: str = "f", group: str = "policy.tulle.io", kind: str = "HTTPFault") -> Any:
    ref = {"group": group, "kind": kind, "name": name}
    rule = {"filters": [{"type": "ExtensionRef", "extensionRef": ref}],
            "backendRefs": [backend("web")]}
    return route("r", rules=[rule])


def within_binomial(count: int, n: int, percent: float) -> bool:
    """``count`` is within 5 standard deviations of Binomial(n, percent/100)'s mean (a
    false alarm about once in 3.5 million runs; the seeds below make it deterministic)."""
    p = percent / 100
    sigma = math.sqrt(n * p * (1 - p))
    return abs(count - n * p) <= 5 * sigma


@pytest.mark.parametrize("percent", [1.0, 10.0, 50.0, 87.5])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_aborts_fire_at_their_percentage(percent: float, seed: int) -> None:
    fault = Fault.of(http_fault(abort={"httpStatus": 503, "percentage": {"value": percent}}))
    rng = random.Random(seed).random
    n = 4000
    aborted = sum(fault.decide(rng)[1] for _ in range(n))
    assert within_binomial(aborted, n, percent), (aborted, n * percent / 100)


@pytest.mark.parametrize("seed", [4, 5])
def test_delays_fire_at_their_percentage_on_their_own_draws(seed: int) -> None:
    fault = Fault.of(http_fault(
        delay={"fixedDelay": "2s", "percentage": {"value": 30}},
        abort={"httpStatus": 500, "percentage": {"value": 60}},
    ))
    rng = random.Random(seed).random
    n = 4000
    decisions = [fault.decide(rng) for _ in range(n)]
    delayed = sum(wait == 2.0 for wait, _ in decisions)
    aborted = sum(a for _, a in decisions)
    both = sum(wait > 0 and a for wait, a in decisions)
    assert all(wait in (0.0, 2.0) for wait, _ in decisions)
    assert within_binomial(delayed, n, 30) and within_binomial(aborted, n, 60)
    assert within_binomial(both, n, 18)  # independent draws: 30% of 60%


def test_zero_never_fires_and_a_left_out_percentage_always_does() -> None:
    never = Fault.of(http_fault(abort={"httpStatus": 503, "percentage": {"value": 0}}))
    always = Fault.of(http_fault(delay={"fixedDelay": "1s"}, abort={"httpStatus": 503}))
    rng = random.Random(7).random
    assert not any(never.decide(rng)[1] for _ in range(1000))
    assert all(always.decide(rng) == (1.0, True) for _ in range(1000))


def test_the_draws_come_delay_first_then_abort() -> None:
    fault = Fault.of(http_fault(
        delay={"fixedDelay": "100ms", "percentage": {"value": 50}},
        abort={"httpStatus": 503, "percentage": {"value": 50}},
    ))
    assert fault.decide(draws(0.1, 0.9)) == (0.1, False)
    assert fault.decide(draws(0.9, 0.1)) == (0.0, True)


def test_an_http_abort_answers_envoys_body() -> None:
    fault = Fault.of(http_fault(abort={"httpStatus": 418}))
    answer = fault.response(request())
    assert answer.status == 418 and answer.body == FAULT_BODY
    assert answer.headers.get("content-length") == str(len(FAULT_BODY))


def test_a_grpc_abort_answers_grpc_callers_in_grpc_and_others_in_http() -> None:
    fault = Fault.of(http_fault(abort={"grpcStatus": "UNAVAILABLE"}))
    grpc = fault.response(request(headers=[("Content-Type", "application/grpc+proto")]))
    assert grpc.status == 200
    assert grpc.headers.get("grpc-status") == "14" and grpc.body == b""
    plain = fault.response(request())
    assert plain.status == 503  # gRPC's HTTP mapping of UNAVAILABLE


def test_a_route_runs_its_fault_where_the_filter_stands() -> None:
    t = tables(faulted_route(), http_fault(
        delay={"fixedDelay": "1s500ms"}, abort={"httpStatus": 503, "percentage": {"value": 50}}
    ))
    # draws: the backend choice, the delay (always: no percentage), the abort
    sent = forward(t.route(PARENT, request(), rng=draws(0.0, 0.5, 0.9)))
    assert sent.delay == 1.5 and sent.backend.name == "web"
    aborted = respond(t.route(PARENT, request(), rng=draws(0.0, 0.5, 0.1)))
    assert aborted.answer is Answer.FAULT_ABORT and aborted.response.status == 503
    assert aborted.delay == 1.5 and aborted.detail == "HTTPFault default/f"


NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


def resolved_refs(*objects: Any) -> tuple[str, str, str]:
    report = compute_status(inputs(*objects), NOW)
    parent = report.routes["default/r"]["parents"][0]
    c = next(c for c in parent["conditions"] if c["type"] == "ResolvedRefs")
    return c["status"], c["reason"], c["message"]


def test_a_resolved_fault_resolves_refs() -> None:
    assert resolved_refs(faulted_route(), http_fault(abort={"httpStatus": 503}))[:2] == (
        "True", "ResolvedRefs")


@pytest.mark.parametrize(
    ("objects", "reason", "message"),
    [
        ((faulted_route("gone"),), "BackendNotFound", "HTTPFault default/gone not found"),
        # a LocalObjectReference: a fault of the same name in another namespace is not it
        ((faulted_route(), http_fault(namespace="other", abort={"httpStatus": 503})),
         "BackendNotFound", "HTTPFault default/f not found"),
        ((faulted_route(group="example.com"), http_fault(abort={"httpStatus": 503})),
         "InvalidKind", "not supported by Tulle"),
        ((faulted_route(kind="RateLimit"),), "InvalidKind", "not supported by Tulle"),
    ],
)
def test_an_unresolved_extension_answers_500_and_says_why(
    objects: tuple[Any, ...], reason: str, message: str
) -> None:
    status, found_reason, found_message = resolved_refs(*objects)
    assert (status, found_reason) == ("False", reason) and message in found_message
    answer = respond(tables(*objects).route(PARENT, request(), rng=draws(0.0)))
    assert answer.answer is Answer.UNSUPPORTED_FILTER and answer.response.status == 500
