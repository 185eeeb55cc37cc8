"""Filter semantics: OR within a field, AND across fields, allow minus deny."""

from __future__ import annotations

import dataclasses

import pytest

from agent.flows.filters import (
    EventTypeFilter,
    FilterError,
    FlowFilter,
    compile_filter,
    compile_filters,
)
from agent.flows.flow import IP, Endpoint, Flow, TCPFlags
from agent.flows.labels import parse_selector
from tests.unit.flows.samples import (
    WEB,
    all_samples,
    dns_udp,
    http_request,
    http_response,
    policy_drop,
    syn,
    synack,
)

FLOWS = all_samples()


def uuids(ff: FlowFilter | list[FlowFilter], deny: list[FlowFilter] | None = None) -> list[str]:
    allow = ff if isinstance(ff, list) else [ff]
    keep = compile_filters(allow, deny or [])
    return [f.uuid[-1] if f.uuid else "u" for f in FLOWS if keep(f)]


# sample ids: 1 syn, 2 synack, 3 policy drop, 4 http request, 5 http response, u udp to world


def test_empty_filters_accept_everything() -> None:
    assert uuids([]) == ["1", "2", "3", "4", "5", "u"]
    assert FlowFilter().is_empty()
    assert compile_filter(FlowFilter())(syn())


def test_values_of_one_field_are_ored() -> None:
    assert uuids(FlowFilter(verdict=("DROPPED",))) == ["3"]
    assert uuids(FlowFilter(verdict=("DROPPED", "FORWARDED"))) == ["1", "2", "3", "4", "5", "u"]
    assert uuids(FlowFilter(destination_port=("5432", "53"))) == ["3", "u"]


def test_fields_are_anded() -> None:
    assert uuids(FlowFilter(protocol=("tcp",), destination_port=("8080",))) == ["1", "4"]
    assert uuids(FlowFilter(protocol=("udp",), destination_port=("8080",))) == []


def test_filter_list_is_ored_and_deny_list_subtracts() -> None:
    allow = [FlowFilter(verdict=("DROPPED",)), FlowFilter(protocol=("udp",))]
    assert uuids(allow) == ["3", "u"]
    assert uuids(allow, deny=[FlowFilter(source_pod=("shop/web",), protocol=("udp",))]) == ["3"]
    # deny only: everything but
    assert uuids([], deny=[FlowFilter(protocol=("tcp",))]) == ["u"]


def test_pod_prefix_with_and_without_namespace() -> None:
    assert uuids(FlowFilter(source_pod=("shop/web",))) == ["1", "3", "4", "u"]
    assert uuids(FlowFilter(source_pod=("shop/web-1",))) == ["1", "3", "4", "u"]
    assert uuids(FlowFilter(source_pod=("shop/",))) == ["1", "2", "3", "4", "5", "u"]
    assert uuids(FlowFilter(destination_pod=("data/db",))) == ["3"]
    # Without a namespace Hubble means "default": shop's web does not match.
    assert uuids(FlowFilter(source_pod=("web",))) == []
    default_web = dataclasses.replace(WEB, namespace="default")
    flow = syn(source=default_web)
    assert compile_filter(FlowFilter(source_pod=("web",)))(flow)
    assert not compile_filter(FlowFilter(source_pod=("other/web",)))(flow)
    with pytest.raises(FilterError, match="namespace"):
        compile_filter(FlowFilter(source_pod=("a/b/c",)))


def test_services_use_pod_syntax() -> None:
    assert uuids(FlowFilter(destination_service=("shop/echo",))) == ["1", "4"]
    assert uuids(FlowFilter(source_service=("shop/ec",))) == ["5"]


def test_ips_and_cidrs() -> None:
    assert uuids(FlowFilter(destination_ip=("10.2.0.9",))) == ["3"]
    assert uuids(FlowFilter(destination_ip=("10.1.0.0/16",))) == ["1", "2", "4", "5"]
    assert uuids(FlowFilter(destination_ip=("1.1.1.0/24", "10.2.0.9"))) == ["3", "u"]
    v6 = syn(ip=IP("fd00::1", "fd00::2:7"))
    assert compile_filter(FlowFilter(destination_ip=("fd00::/64",)))(v6)
    assert compile_filter(FlowFilter(destination_ip=("fd00:0::2:7",)))(v6)  # normalised
    with pytest.raises(FilterError, match="not an IP"):
        compile_filter(FlowFilter(source_ip=("10.0.0.300",)))


def test_labels_selectors() -> None:
    assert uuids(FlowFilter(source_label=("app=web",))) == ["1", "3", "4", "u"]
    assert uuids(FlowFilter(source_label=("k8s:app=web",))) == ["1", "3", "4", "u"]
    assert uuids(FlowFilter(source_label=("k8s.app in (echo, db)",))) == ["2", "5"]
    assert uuids(FlowFilter(destination_label=("app!=echo",))) == ["2", "3", "5", "u"]
    assert uuids(FlowFilter(destination_label=("reserved:world",))) == ["u"]
    assert uuids(FlowFilter(source_label=("app=web,tier=front",))) == ["1", "3", "4", "u"]
    assert uuids(FlowFilter(source_label=("app=web,!tier",))) == []
    assert not parse_selector("cidr:app=web").matches(WEB.labels)  # other source
    with pytest.raises(FilterError, match="label selector"):
        compile_filter(FlowFilter(source_label=("app in",)))


def test_http_status_prefixes() -> None:
    flows = [http_response(code=c) for c in (200, 404, 418, 503)] + [http_request()]

    def codes(*values: str) -> list[int]:
        keep = compile_filter(FlowFilter(http_status_code=values))
        return [f.l7.http.code for f in flows if keep(f) and f.l7 and f.l7.http]

    assert codes("5+") == [503]
    assert codes("4+") == [404, 418]
    assert codes("40+") == [404]
    assert codes("404", "5+") == [404, 503]
    assert codes("200") == [200]
    for bad in ("6+", "abc", "4040", "+"):
        with pytest.raises(FilterError, match="http status"):
            compile_filter(FlowFilter(http_status_code=(bad,)))


def test_http_method_and_path_regex() -> None:
    flows = [http_request(path=p) for p in ("/hello", "/api/v1/users/42", "/healthz?x=1")]
    keep = compile_filter(FlowFilter(http_path=(r"^/api/v\d+/users/\d+$",)))
    assert [f.l7.http.url for f in flows if keep(f) and f.l7 and f.l7.http] == [
        "http://echo/api/v1/users/42"
    ]
    keep = compile_filter(FlowFilter(http_path=("health",)))  # searched, not anchored
    assert sum(map(keep, flows)) == 1
    assert compile_filter(FlowFilter(http_path=("^/healthz$",)))(flows[2])  # query ignored
    assert compile_filter(FlowFilter(http_method=("get",)))(flows[0])
    assert not compile_filter(FlowFilter(http_method=("POST",)))(flows[0])
    assert not compile_filter(FlowFilter(http_method=("GET",)))(syn())  # not HTTP
    with pytest.raises(FilterError, match="regular expression"):
        compile_filter(FlowFilter(http_path=("(",)))


def test_http_path_regex_runs_in_linear_time() -> None:
    """Issue 9, item 6: patterns that backtrack exponentially under Python's re return
    at once under RE2; unsupported syntax and over-long patterns are refused by name."""
    long_path = http_request(path="/" + "a" * 20_000 + "!")
    for pattern in ("^/(a+)+$", "^/(\\w+\\s?)*$", "^/(a|aa)+$"):
        assert not compile_filter(FlowFilter(http_path=(pattern,)))(long_path)
    assert compile_filter(FlowFilter(http_path=("^/(a+)+!$",)))(long_path)
    for pattern, why in (
        ("(a)\\1", "backreferences"),
        ("/x(?=y)", "lookahead"),
        ("/(?<!x)y", "negative lookbehind"),
        ("a" * 1025, "limited to 1024 bytes"),
    ):
        with pytest.raises(FilterError, match=f"http path: regular expression .*{why}"):
            compile_filter(FlowFilter(http_path=(pattern,)))


def test_event_types_and_verdicts() -> None:
    assert uuids(FlowFilter(event_type=(EventTypeFilter(1),))) == ["3"]
    assert uuids(FlowFilter(event_type=(EventTypeFilter(129),))) == ["4", "5"]
    assert uuids(FlowFilter(event_type=(EventTypeFilter(4, 0),))) == ["1", "2"]  # to-endpoint
    assert uuids(FlowFilter(event_type=(EventTypeFilter(4, 11),))) == ["u"]  # to-network
    assert uuids(FlowFilter(event_type=(EventTypeFilter(4),))) == ["1", "2", "u"]
    with pytest.raises(FilterError, match="verdict"):
        compile_filter(FlowFilter(verdict=("DENIED",)))


def test_protocol_tcp_flags_direction_reply_node_drop_reason() -> None:
    assert uuids(FlowFilter(protocol=("http",))) == ["4", "5"]
    assert uuids(FlowFilter(protocol=("UDP",))) == ["u"]
    assert uuids(FlowFilter(tcp_flags=(TCPFlags(SYN=True, ACK=True),))) == ["2"]
    assert uuids(FlowFilter(tcp_flags=(TCPFlags(SYN=True),))) == ["1", "2", "3"]
    assert uuids(FlowFilter(tcp_flags=(TCPFlags(FIN=True), TCPFlags(ACK=True)))) == ["2"]
    assert uuids(FlowFilter(traffic_direction=("ingress",))) == ["2", "3"]
    assert uuids(FlowFilter(reply=(True,))) == ["2", "5"]
    assert uuids(FlowFilter(node_name=("node-2",))) == ["3"]
    assert uuids(FlowFilter(node_name=("node-*",))) == ["1", "2", "3", "4", "5", "u"]
    assert uuids(FlowFilter(drop_reason_desc=("policy_denied",))) == ["3"]
    assert uuids(FlowFilter(drop_reason_desc=("133",))) == ["3"]
    assert uuids(FlowFilter(source_workload=(("Deployment", "web"),))) == ["1", "3", "4", "u"]
    assert uuids(FlowFilter(destination_identity=(2,))) == ["u"]
    with pytest.raises(FilterError, match="protocol"):
        compile_filter(FlowFilter(protocol=("sctpx",)))
    with pytest.raises(FilterError, match="traffic direction"):
        compile_filter(FlowFilter(traffic_direction=("sideways",)))


def test_flows_without_fields_do_not_match_field_filters() -> None:
    bare = Flow()
    for ff in (
        FlowFilter(source_pod=("default/",)),
        FlowFilter(source_ip=("0.0.0.0/0",)),
        FlowFilter(destination_port=("0",)),
        FlowFilter(http_status_code=("2+",)),
        FlowFilter(source_label=("app",)),
        FlowFilter(event_type=(EventTypeFilter(4),)),
    ):
        assert not compile_filter(ff)(bare), ff
    assert compile_filter(FlowFilter(source_label=("!app",)))(bare)
    assert compile_filter(FlowFilter(source_label=("!app",)))(syn(source=Endpoint()))
    assert [f.uuid for f in (policy_drop(), dns_udp(), synack())]  # samples build
