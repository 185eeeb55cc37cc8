"""Compilation: determinism, memoisation on the inputs' fingerprint, and invalid rules
dropped without taking the rest of the route down."""

from __future__ import annotations

import dataclasses

from agent.model.gateway import RouteStatus
from gatewayapi import RouteCompiler, RoutingInputs
from tests.unit.gatewayapi.helpers import (
    PARENT,
    backend,
    draws,
    forward,
    inputs,
    picked,
    request,
    route,
    tables,
)


def _world() -> RoutingInputs:
    return inputs(
        route(
            "a", rules=[{"matches": [{"path": {"value": "/a"}}], "backendRefs": [backend("v1")]}]
        ),
        route(
            "b", rules=[{"matches": [{"path": {"value": "/b"}}], "backendRefs": [backend("v2")]}]
        ),
    )


def test_compiler_memoises_on_what_routing_reads() -> None:
    compiler = RouteCompiler()
    world = _world()
    first = compiler.compile(world)
    assert compiler.compile(world) is first
    # Reordered inputs, a status write and a resource version bump change nothing.
    shuffled = dataclasses.replace(world, routes=tuple(reversed(world.routes)))
    assert compiler.compile(shuffled) is first
    bumped = dataclasses.replace(
        world,
        routes=tuple(
            dataclasses.replace(
                r,
                metadata=dataclasses.replace(r.metadata, resource_version="42"),
                status=RouteStatus(),
            )
            for r in world.routes
        ),
    )
    assert compiler.compile(bumped) is first
    assert compiler.compilations == 1
    # A spec change recompiles.
    changed = dataclasses.replace(world, routes=world.routes[:1])
    second = compiler.compile(changed)
    assert second is not first and compiler.compilations == 2
    assert picked(second, "/b") is None and picked(first, "/b") == "default/b#0"


def test_compilation_is_deterministic() -> None:
    world = _world()
    t1 = RouteCompiler().compile(world)
    t2 = RouteCompiler().compile(dataclasses.replace(world, routes=tuple(reversed(world.routes))))
    for target in ("/a", "/b", "/c"):
        assert picked(t1, target) == picked(t2, target)
    assert t1.listeners == t2.listeners


def test_invalid_rule_is_dropped_and_the_rest_keeps_working() -> None:
    bad = {
        "matches": [{"path": {"value": "/bad"}}],
        "filters": [{"type": "CORS", "cors": {"allowOrigins": ["*"]}}],
        "backendRefs": [
            backend("web", filters=[{"type": "CORS", "cors": {"allowOrigins": ["*"]}}])
        ],
    }
    good = {"matches": [{"path": {"value": "/good"}}], "backendRefs": [backend("v1")]}
    t = tables(route("r", rules=[bad, good]))
    assert picked(t, "/bad") is None
    assert forward(t.route(PARENT, request("/good"), rng=draws(0.0))).backend.name == "v1"


def test_invalid_backend_in_one_rule_does_not_affect_others() -> None:
    t = tables(
        route(
            "r",
            rules=[
                {"matches": [{"path": {"value": "/x"}}], "backendRefs": [backend("missing")]},
                {"matches": [{"path": {"value": "/y"}}], "backendRefs": [backend("v2")]},
            ],
        )
    )
    assert forward(t.route(PARENT, request("/y"), rng=draws(0.0))).backend.name == "v2"
    assert picked(t, "/x") == "default/r#0"


def test_normalized_path_is_matched_and_forwarded() -> None:
    t = tables(
        route(
            "r",
            rules=[
                {
                    "matches": [{"path": {"type": "Exact", "value": "/admin"}}],
                    "backendRefs": [backend("web")],
                }
            ],
        )
    )
    sent = forward(t.route(PARENT, request("/public/../admin?x=1"), rng=draws(0.0)))
    assert sent.request.target == "/admin?x=1"
    raw = t.route(PARENT, request("/public/../admin"), rng=draws(0.0), normalize=False)
    assert not hasattr(raw, "backend")
