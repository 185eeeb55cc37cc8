"""Hypothesis: generated valid manifests survive from_dict -> to_dict -> from_dict unchanged."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from agent.model.convert import from_dict, to_dict
from agent.model.duration import format_duration

LABEL = st.from_regex(r"[a-z]([a-z0-9-]{0,6}[a-z0-9])?", fullmatch=True)
PORT = st.integers(min_value=1, max_value=65535)
PORT_NAME = st.from_regex(r"[a-z]{1,6}", fullmatch=True)
HEADER = st.from_regex(r"[A-Za-z][A-Za-z0-9-]{0,10}", fullmatch=True)
LABELS = st.dictionaries(LABEL, LABEL, max_size=3)


def optional(key: str, values: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    """Either {} or {key: value}."""
    return st.one_of(st.just({}), values.map(lambda v: {key: v}))


def merged(*parts: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    return st.tuples(*parts).map(lambda dicts: {k: v for d in dicts for k, v in d.items()})


# --- HTTPRoute -------------------------------------------------------------------------

PATH = st.lists(LABEL, max_size=3).map(lambda parts: "/" + "/".join(parts))
PATH_MATCH = st.one_of(
    merged(optional("type", st.sampled_from(["Exact", "PathPrefix"])), optional("value", PATH)),
    PATH.map(lambda p: {"type": "RegularExpression", "value": p + "/[0-9]+"}),
)
HEADER_MATCHES = st.lists(
    st.fixed_dictionaries(
        {"name": HEADER, "value": LABEL},
        optional={"type": st.sampled_from(["Exact", "RegularExpression"])},
    ),
    max_size=2,
    unique_by=lambda h: h["name"],
)
MATCH = merged(
    optional("path", PATH_MATCH),
    optional("headers", HEADER_MATCHES),
    optional("method", st.sampled_from(["GET", "POST", "DELETE"])),
)
BACKEND = st.fixed_dictionaries(
    {"name": LABEL, "port": PORT},
    optional={"weight": st.integers(0, 1_000_000), "namespace": LABEL},
)
HEADER_FILTER = st.lists(
    st.fixed_dictionaries({"name": HEADER, "value": LABEL}),
    min_size=1,
    max_size=3,
    unique_by=lambda h: h["name"].lower(),
).map(lambda set_: {"type": "RequestHeaderModifier", "requestHeaderModifier": {"set": set_}})


@st.composite
def timeouts(draw: st.DrawFn) -> dict[str, str]:
    request = draw(st.integers(0, 10**8))
    backend = draw(st.integers(0, request if request else 10**8))
    as_text = [format_duration(timedelta(milliseconds=ms)) for ms in (request, backend)]
    return {"request": as_text[0], "backendRequest": as_text[1]}


RULE = merged(
    optional("matches", st.lists(MATCH, max_size=3)),
    optional("backendRefs", st.lists(BACKEND, max_size=3)),
    optional("filters", st.lists(HEADER_FILTER, max_size=1)),
    optional("timeouts", timeouts()),
)
HTTP_ROUTE = st.builds(
    lambda name, parents, hostnames, rules: {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": name, "namespace": "shop"},
        "spec": {"parentRefs": parents, "hostnames": hostnames, "rules": rules},
    },
    LABEL,
    st.lists(st.fixed_dictionaries({"name": LABEL}), max_size=2, unique_by=lambda p: p["name"]),
    st.lists(LABEL.map(lambda h: f"{h}.example.com"), max_size=3),
    st.lists(RULE, min_size=1, max_size=4),
)


# --- Service ---------------------------------------------------------------------------


@st.composite
def services(draw: st.DrawFn) -> dict[str, Any]:
    service_type = draw(st.sampled_from(["ClusterIP", "NodePort", "LoadBalancer"]))
    count = draw(st.integers(1, 4))
    names = draw(st.lists(PORT_NAME, min_size=count, max_size=count, unique=True))
    numbers = draw(st.lists(PORT, min_size=count, max_size=count, unique=True))
    ports = []
    for name, number in zip(names, numbers, strict=True):
        port: dict[str, Any] = {"name": name, "port": number}
        port.update(draw(optional("targetPort", st.one_of(PORT, PORT_NAME))))
        port.update(draw(optional("protocol", st.sampled_from(["TCP", "UDP", "SCTP"]))))
        if service_type != "ClusterIP":
            port.update(draw(optional("nodePort", st.integers(30000, 32767))))
        ports.append(port)
    spec: dict[str, Any] = {"type": service_type, "ports": ports, "selector": draw(LABELS)}
    if draw(st.booleans()):
        spec["sessionAffinity"] = "ClientIP"
        spec.update(
            draw(
                optional(
                    "sessionAffinityConfig",
                    st.integers(1, 86400).map(lambda t: {"clientIP": {"timeoutSeconds": t}}),
                )
            )
        )
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "svc"}, "spec": spec}


# --- NetworkPolicy ---------------------------------------------------------------------

SELECTOR = merged(
    optional("matchLabels", LABELS),
    optional(
        "matchExpressions",
        st.lists(
            st.one_of(
                st.builds(
                    lambda k, v: {"key": k, "operator": "In", "values": v},
                    LABEL,
                    st.lists(LABEL, min_size=1, max_size=2),
                ),
                LABEL.map(lambda k: {"key": k, "operator": "DoesNotExist"}),
            ),
            max_size=2,
        ),
    ),
)
PEER = st.one_of(
    st.fixed_dictionaries({"podSelector": SELECTOR}),
    st.fixed_dictionaries({"namespaceSelector": SELECTOR}, optional={"podSelector": SELECTOR}),
    st.integers(0, 255).map(
        lambda n: {"ipBlock": {"cidr": f"10.{n}.0.0/16", "except": [f"10.{n}.1.0/24"]}}
    ),
)
NP_PORT = st.one_of(
    st.fixed_dictionaries({}, optional={"protocol": st.sampled_from(["TCP", "UDP"])}),
    st.fixed_dictionaries({"port": PORT_NAME}),
    st.tuples(PORT, st.integers(0, 100)).map(
        lambda p: {"port": p[0], "endPort": min(p[0] + p[1], 65535)}
    ),
)
NETWORK_POLICY = st.builds(
    lambda selector, ingress, egress: {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "np", "namespace": "shop"},
        "spec": {"podSelector": selector, "ingress": ingress, "egress": egress},
    },
    SELECTOR,
    st.lists(
        merged(
            optional("from", st.lists(PEER, max_size=3)),
            optional("ports", st.lists(NP_PORT, max_size=3)),
        ),
        max_size=3,
    ),
    st.lists(
        merged(
            optional("to", st.lists(PEER, max_size=3)),
            optional("ports", st.lists(NP_PORT, max_size=3)),
        ),
        max_size=3,
    ),
)


def check_round_trip(doc: dict[str, Any]) -> None:
    resource = from_dict(doc)
    written = to_dict(resource)
    assert from_dict(written) == resource
    assert to_dict(from_dict(written)) == written
    assert hash(from_dict(written)) == hash(resource)


@settings(max_examples=100, deadline=None)
@given(HTTP_ROUTE)
def test_http_routes_round_trip(doc: dict[str, Any]) -> None:
    check_round_trip(doc)


@settings(max_examples=100, deadline=None)
@given(services())
def test_services_round_trip(doc: dict[str, Any]) -> None:
    check_round_trip(doc)


@settings(max_examples=100, deadline=None)
@given(NETWORK_POLICY)
def test_network_policies_round_trip(doc: dict[str, Any]) -> None:
    check_round_trip(doc)
