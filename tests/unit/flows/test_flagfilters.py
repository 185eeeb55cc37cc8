"""Filter flags in command-line order -> allow and deny lists, as Hubble's CLI builds them."""

from __future__ import annotations

import pytest

from agent.flows.filters import EventTypeFilter, FilterError, FlowFilter, compile_filters
from agent.flows.flagfilters import FilterBuilder, parse_event_type
from agent.flows.flow import TCPFlags
from tests.unit.flows.samples import all_samples


def build(*args: tuple[str, str | None]) -> tuple[list[FlowFilter], list[FlowFilter]]:
    b = FilterBuilder()
    for flag, value in args:
        b.add(flag, value)
    return b.build()


def selected(*args: tuple[str, str | None]) -> list[str]:
    allow, deny = build(*args)
    keep = compile_filters(allow, deny)
    return [f.uuid[-1] if f.uuid else "u" for f in all_samples() if keep(f)]


def test_either_side_flag_makes_two_ored_filters() -> None:
    allow, deny = build(("pod", "shop/echo"))
    assert allow == [FlowFilter(source_pod=("shop/echo",)),
                     FlowFilter(destination_pod=("shop/echo",))]
    assert deny == []
    assert selected(("pod", "shop/echo")) == ["1", "2", "4", "5"]


def test_plain_flags_apply_to_both_sides() -> None:
    allow, _ = build(("ip", "10.1.1.7"), ("verdict", "FORWARDED"), ("verdict", "DROPPED"))
    assert allow == [
        FlowFilter(source_ip=("10.1.1.7",), verdict=("FORWARDED", "DROPPED")),
        FlowFilter(destination_ip=("10.1.1.7",), verdict=("FORWARDED", "DROPPED")),
    ]
    allow, _ = build(("from-pod", "shop/web"), ("to-port", "8080"))
    assert allow == [FlowFilter(source_pod=("shop/web",), destination_port=("8080",))]


def test_not_negates_only_the_next_flag() -> None:
    allow, deny = build(("protocol", "tcp"), ("not", None), ("verdict", "DROPPED"),
                        ("to-port", "8080"))
    assert allow == [FlowFilter(protocol=("tcp",), destination_port=("8080",))]
    assert deny == [FlowFilter(verdict=("DROPPED",))]
    assert selected(("not", None), ("pod", "shop/echo")) == ["3", "u"]
    # As in Hubble, negated flags share one deny filter, so they are AND-ed with each other:
    # this denies flows that are L7 *and* TCP.
    assert selected(("not", None), ("type", "l7"), ("not", None), ("protocol", "tcp")) == [
        "1", "2", "3", "u"
    ]
    with pytest.raises(FilterError, match="consecutive"):
        build(("not", None), ("not", None), ("pod", "x"))
    with pytest.raises(FilterError, match="followed"):
        build(("pod", "x"), ("not", None))


def test_namespace_qualifies_pods_and_defaults_to_any_pod() -> None:
    allow, _ = build(("namespace", "shop"))
    assert allow == [FlowFilter(source_pod=("shop/",)), FlowFilter(destination_pod=("shop/",))]
    allow, _ = build(("pod", "web"), ("namespace", "shop"), ("namespace", "data"))
    assert allow == [FlowFilter(source_pod=("shop/web", "data/web")),
                     FlowFilter(destination_pod=("shop/web", "data/web"))]
    allow, _ = build(("to-namespace", "data"), ("from-namespace", "shop"))
    assert allow == [FlowFilter(source_pod=("shop/",), destination_pod=("data/",))]
    assert selected(("to-namespace", "data")) == ["3"]
    assert selected(("all-namespaces", None)) == ["1", "2", "3", "4", "5", "u"]


def test_conflicting_flags_are_refused() -> None:
    for a, b in [("label", "from-label"), ("port", "to-port"), ("to-pod", "namespace"),
                 ("all-namespaces", "namespace"), ("ip", "from-ip")]:
        with pytest.raises(FilterError, match="cannot be combined"):
            build((a, "x" if a != "all-namespaces" else None), (b, "y"))
    # ... but the same pair is fine across allow and deny lists
    build(("label", "app=a"), ("not", None), ("from-label", "app=b"))


def test_typed_values() -> None:
    allow, _ = build(("tcp-flags", "syn,ack"), ("tcp-flags", "FIN"), ("identity", "world"))
    assert allow[0].tcp_flags == (TCPFlags(SYN=True, ACK=True), TCPFlags(FIN=True))
    assert allow[0].source_identity == (2,)
    with pytest.raises(FilterError, match="tcp-flags"):
        build(("tcp-flags", "SYN,BOGUS"))


def test_event_type_names() -> None:
    assert parse_event_type("trace") == EventTypeFilter(4)
    assert parse_event_type("trace:to-endpoint") == EventTypeFilter(4, 0)
    assert parse_event_type("trace:from-network") == EventTypeFilter(4, 10)
    assert parse_event_type("drop") == EventTypeFilter(1)
    assert parse_event_type("drop:POLICY_DENIED") == EventTypeFilter(1, 133)
    assert parse_event_type("policy-verdict") == EventTypeFilter(5)
    assert parse_event_type("l7") == EventTypeFilter(129)
    assert parse_event_type("4:3") == EventTypeFilter(4, 3)
    with pytest.raises(FilterError, match="unknown"):
        parse_event_type("bogus")
    with pytest.raises(FilterError, match="sub type"):
        parse_event_type("trace:sideways")
