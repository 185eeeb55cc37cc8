"""FlowMetrics against golden flows, checked through the scraped text exposition."""

from __future__ import annotations

import dataclasses
import threading

import pytest
from prometheus_client import CollectorRegistry

from agent.flows.flow import (
    HTTP,
    IP,
    TCP,
    Endpoint,
    EventType,
    Flow,
    FlowType,
    L7Type,
    Layer7,
    TCPFlags,
    TrafficDirection,
    Verdict,
    Workload,
)
from agent.flows.names import EVENT_POLICY_VERDICT, LostEventSource
from agent.metrics import FamilyConfig, FlowMetrics, MetricsConfig
from tests.unit.flows import samples
from tests.unit.metrics.scrape import family_names, labels, scrape, series


def metrics(config: MetricsConfig | None = None) -> tuple[FlowMetrics, CollectorRegistry]:
    registry = CollectorRegistry()
    return FlowMetrics(config, registry), registry


def response(code: int = 200, latency_ns: int = 3_000_000, client: Endpoint = samples.WEB,
             server: Endpoint = samples.ECHO, method: str = "GET") -> Flow:
    return dataclasses.replace(
        samples.http_response(code=code), source=server, destination=client,
        l7=Layer7(L7Type.RESPONSE, latency_ns, HTTP(code, method, "http://echo/", "HTTP/1.1")),
    )


def client(name: str, namespace: str = "shop") -> Endpoint:
    return Endpoint(namespace=namespace, pod_name=f"{name}-0",
                    workloads=(Workload(name, "Deployment"),))


def test_golden_flows_counted_by_family() -> None:
    fm, reg = metrics()
    fm.observe_many(samples.all_samples())
    got = scrape(reg)
    assert series(got, "tulle_flows_processed_total") == {
        labels(type="Trace", subtype="to-endpoint", verdict="FORWARDED", protocol="TCP"): 2,
        labels(type="Drop", subtype="", verdict="DROPPED", protocol="TCP"): 1,
        labels(type="L7", subtype="HTTP", verdict="FORWARDED", protocol="HTTP"): 2,
        labels(type="Trace", subtype="to-network", verdict="FORWARDED", protocol="UDP"): 1,
    }
    assert series(got, "tulle_drop_total") == {labels(reason="POLICY_DENIED", protocol="TCP"): 1}
    assert series(got, "tulle_tcp_flags_total") == {
        labels(flag="SYN", family="IPv4"): 1,
        labels(flag="SYN-ACK", family="IPv4"): 1,
    }
    assert series(got, "tulle_policy_verdicts_total") == {
        labels(direction="ingress", action="dropped"): 1,
    }
    # One request (the response flow), client web -> server echo, not the reverse.
    assert series(got, "tulle_http_requests_total") == {
        labels(method="GET", code="200", source_workload="shop/web",
               destination_workload="shop/echo"): 1,
    }


def test_http_duration_histogram_buckets() -> None:
    fm, reg = metrics()
    for latency_ns in (400_000, 1_000_000, 1_000_001, 3_000_000, 20_000_000_000):
        fm.observe(response(latency_ns=latency_ns))
    fm.observe(response(latency_ns=0))  # no latency measured: counted, not timed
    got = scrape(reg)
    wl = dict(method="GET", source_workload="shop/web", destination_workload="shop/echo")
    buckets = {dict(k)["le"]: v for k, v in
               series(got, "tulle_http_request_duration_seconds_bucket").items()}
    assert buckets["0.0005"] == 1
    assert buckets["0.001"] == 2  # le is inclusive: exactly 1ms lands in le=0.001
    assert buckets["0.0025"] == 3
    assert buckets["0.005"] == 4
    assert buckets["10.0"] == 4
    assert buckets["+Inf"] == 5
    assert series(got, "tulle_http_request_duration_seconds_count") == {labels(**wl): 5}
    (total,) = series(got, "tulle_http_request_duration_seconds_sum").values()
    assert total == pytest.approx(0.0004 + 0.001 + 0.001000001 + 0.003 + 20.0)
    assert series(got, "tulle_http_requests_total") == {labels(code="200", **wl): 6}


def test_http_codes_and_methods_are_separate_series() -> None:
    fm, reg = metrics()
    for code in (200, 200, 503, 404):
        fm.observe(response(code=code))
    fm.observe(response(code=201, method="POST"))
    got = series(scrape(reg), "tulle_http_requests_total")
    by = {(dict(k)["method"], dict(k)["code"]): v for k, v in got.items()}
    assert by == {("GET", "200"): 2, ("GET", "503"): 1, ("GET", "404"): 1, ("POST", "201"): 1}


def test_response_recorded_client_to_server_keeps_direction() -> None:
    fm, reg = metrics()
    flow = dataclasses.replace(response(), source=samples.WEB, destination=samples.ECHO,
                               is_reply=False)
    fm.observe(flow)
    (key,) = series(scrape(reg), "tulle_http_requests_total")
    assert dict(key)["source_workload"] == "shop/web"
    assert dict(key)["destination_workload"] == "shop/echo"


def test_http_request_flows_are_not_requests_twice() -> None:
    fm, reg = metrics()
    fm.observe(samples.http_request())
    fm.observe(samples.http_response())
    assert sum(series(scrape(reg), "tulle_http_requests_total").values()) == 1


def test_workload_label_falls_back_to_pod_name_and_reserved_identities() -> None:
    fm, reg = metrics()
    bare_pod = Endpoint(namespace="shop", pod_name="cart-7d9c6b8f5d-x2kq9")
    fm.observe(response(client=samples.WORLD, server=bare_pod))
    (key,) = series(scrape(reg), "tulle_http_requests_total")
    assert dict(key)["source_workload"] == "world"
    assert dict(key)["destination_workload"] == "shop/cart"


def test_lost_events_by_source() -> None:
    fm, reg = metrics()
    fm.observe_lost(LostEventSource.PERF_EVENT_RING_BUFFER, 5)
    fm.observe_lost("PERF_EVENT_RING_BUFFER", 2)
    fm.observe_lost(LostEventSource.OBSERVER_EVENTS_QUEUE, 1)
    fm.observe_lost(LostEventSource.OBSERVER_EVENTS_QUEUE, 0)
    assert series(scrape(reg), "tulle_lost_events_total") == {
        labels(source="perf_event_ring_buffer"): 7,
        labels(source="observer_events_queue"): 1,
    }


def test_policy_verdict_events_count_with_their_action() -> None:
    fm, reg = metrics()
    allowed = dataclasses.replace(samples.syn(), event_type=EventType(EVENT_POLICY_VERDICT, 0),
                                  traffic_direction=TrafficDirection.EGRESS)
    audited = dataclasses.replace(allowed, verdict=Verdict.AUDIT,
                                  traffic_direction=TrafficDirection.INGRESS)
    fm.observe_many([allowed, allowed, audited])
    got = scrape(reg)
    assert series(got, "tulle_policy_verdicts_total") == {
        labels(direction="egress", action="forwarded"): 2,
        labels(direction="ingress", action="audit"): 1,
    }
    assert labels(type="PolicyVerdict", subtype="", verdict="FORWARDED", protocol="TCP") in \
        series(got, "tulle_flows_processed_total")


def test_flow_without_event_type_is_typed_from_the_flow() -> None:
    fm, reg = metrics()
    fm.observe(dataclasses.replace(samples.syn(), event_type=None,
                                   trace_observation_point="FROM_ENDPOINT"))
    fm.observe(dataclasses.replace(samples.policy_drop(), event_type=None))
    got = series(scrape(reg), "tulle_flows_processed_total")
    assert got == {
        labels(type="Trace", subtype="from-endpoint", verdict="FORWARDED", protocol="TCP"): 1,
        labels(type="Drop", subtype="", verdict="DROPPED", protocol="TCP"): 1,
    }


def test_tcp_flags_only_on_forwarded_flows_fin_and_rst() -> None:
    fm, reg = metrics()
    fin_ack = dataclasses.replace(samples.syn(), l4=TCP(1, 2, TCPFlags(FIN=True, ACK=True)))
    rst = dataclasses.replace(samples.syn(), l4=TCP(1, 2, TCPFlags(RST=True)),
                              ip=IP("fd00::1", "fd00::2", ip_version="IPv6"))  # type: ignore[arg-type]
    ack_only = dataclasses.replace(samples.syn(), l4=TCP(1, 2, TCPFlags(ACK=True)))
    fm.observe_many([fin_ack, rst, ack_only, samples.policy_drop()])
    assert series(scrape(reg), "tulle_tcp_flags_total") == {
        labels(flag="FIN", family="IPv4"): 1,
        labels(flag="RST", family="IPv6"): 1,
    }


# -- bounded cardinality -------------------------------------------------------------------


def test_label_value_cap_collapses_into_other_and_counts_overflow() -> None:
    cfg = MetricsConfig(families={"http_requests": FamilyConfig(max_label_values=2)})
    fm, reg = metrics(cfg)
    for name in ("a", "b", "c", "d", "a"):
        fm.observe(response(client=client(name)))
    fm.observe(response(client=client("d")))  # still over the cap: the slow path each time
    got = scrape(reg)
    by_src = {dict(k)["source_workload"]: v
              for k, v in series(got, "tulle_http_requests_total").items()}
    assert by_src == {"shop/a": 2, "shop/b": 1, "other": 3}
    assert sum(by_src.values()) == 6  # nothing lost, only collapsed
    assert series(got, "tulle_metrics_label_overflow_total") == {
        labels(metric="tulle_http_requests_total", label="source_workload"): 3,
    }
    # The duration family has its own (default, larger) cap: nothing collapsed there.
    dur = series(got, "tulle_http_request_duration_seconds_count")
    assert {dict(k)["source_workload"] for k in dur} == {"shop/a", "shop/b", "shop/c", "shop/d"}


def test_series_cap_collapses_new_combinations() -> None:
    cfg = MetricsConfig(families={"drop": FamilyConfig(max_series=2)})
    fm, reg = metrics(cfg)
    for reason in ("POLICY_DENIED", "CT_MAP_INSERTION_FAILED", "TTL_EXCEEDED", "TTL_EXCEEDED",
                   "POLICY_DENIED"):
        fm.observe(dataclasses.replace(samples.policy_drop(), drop_reason_desc=reason))
    got = scrape(reg)
    assert series(got, "tulle_drop_total") == {
        labels(reason="POLICY_DENIED", protocol="TCP"): 2,
        labels(reason="CT_MAP_INSERTION_FAILED", protocol="TCP"): 1,
        labels(reason="other", protocol="other"): 2,
    }
    assert series(got, "tulle_metrics_label_overflow_total") == {
        labels(metric="tulle_drop_total", label="*"): 2,
    }


def test_hostile_values_do_not_grow_memory() -> None:
    fm, reg = metrics(MetricsConfig(max_label_values=8))
    for i in range(5000):
        fm.observe(response(method=f"M{i}"))
    got = scrape(reg)
    assert len(series(got, "tulle_http_requests_total")) == 9  # 8 methods + other
    assert sum(series(got, "tulle_http_requests_total").values()) == 5000
    assert len(fm._https.requests.cache) <= 8  # type: ignore[union-attr]  # only admitted keys cached


def test_label_subset_sums_dropped_labels() -> None:
    cfg = MetricsConfig(families={
        "http_requests": FamilyConfig(labels=("code", "method")),
        "http_request_duration_seconds": FamilyConfig(labels=("method",)),
    })
    fm, reg = metrics(cfg)
    for name in ("a", "b", "c"):
        fm.observe(response(client=client(name)))
    fm.observe(response(client=client("a"), code=500))
    got = scrape(reg)
    assert series(got, "tulle_http_requests_total") == {
        labels(method="GET", code="200"): 3,
        labels(method="GET", code="500"): 1,
    }
    assert series(got, "tulle_http_request_duration_seconds_count") == {labels(method="GET"): 4}


def test_disabled_family_is_not_exposed() -> None:
    cfg = MetricsConfig(families={"tcp_flags": FamilyConfig(enabled=False)})
    fm, reg = metrics(cfg)
    fm.observe_many(samples.all_samples())
    names = family_names(reg)
    assert "tulle_tcp_flags" not in names
    assert "tulle_flows_processed" in names


def test_concurrent_writers_lose_nothing() -> None:
    fm, reg = metrics()
    flows = samples.all_samples()

    def work() -> None:
        for _ in range(2000):
            fm.observe_many(flows)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    total = sum(series(scrape(reg), "tulle_flows_processed_total").values())
    assert total == 4 * 2000 * len(flows)


def test_empty_families_are_still_exposed() -> None:
    _, reg = metrics()
    assert {"tulle_flows_processed", "tulle_drop", "tulle_http_requests",
            "tulle_http_request_duration_seconds", "tulle_lost_events",
            "tulle_metrics_label_overflow"} <= family_names(reg)


def test_flow_type_sock_and_unknown_l4() -> None:
    fm, reg = metrics()
    fm.observe(Flow(verdict=Verdict.FORWARDED, type=FlowType.SOCK))
    assert series(scrape(reg), "tulle_flows_processed_total") == {
        labels(type="SockTrace", subtype="", verdict="FORWARDED", protocol="unknown"): 1,
    }
