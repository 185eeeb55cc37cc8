"""Hubble's extra metric labels under --metrics-hubble-names: ``match`` on policy verdicts,
``protocol`` and ``reporter`` on HTTP requests; bounded; Tulle's names keep their labels."""

from __future__ import annotations

from dataclasses import replace

from prometheus_client import CollectorRegistry

from agent.flows.flow import HTTP, EventType, L7Type, Layer7, Verdict
from agent.flows.names import EVENT_POLICY_VERDICT, TrafficDirection
from agent.metrics import FamilyConfig, FlowMetrics, MetricsConfig
from tests.unit.flows import samples
from tests.unit.metrics.scrape import labels, scrape, series

HUBBLE = MetricsConfig(hubble_names=True)


def metrics(config: MetricsConfig) -> tuple[FlowMetrics, CollectorRegistry]:
    reg = CollectorRegistry()
    return FlowMetrics(config, reg), reg


def test_policy_match_follows_hubbles_match_types() -> None:
    fm, reg = metrics(HUBBLE)
    verdict = replace(samples.syn(), event_type=EventType(EVENT_POLICY_VERDICT, 0),
                      policy_match_type=2, traffic_direction=TrafficDirection.INGRESS)
    l7_denied = replace(samples.http_response(code=403), verdict=Verdict.DROPPED,
                        drop_reason=133, drop_reason_desc="POLICY_DENIED")
    fm.observe_many([verdict, samples.policy_drop(), l7_denied])
    got = series(scrape(reg), "hubble_policy_verdicts_total")
    assert got == {
        labels(direction="ingress", match="l3-l4", action="forwarded"): 1,
        labels(direction="ingress", match="none", action="dropped"): 1,
        labels(direction="egress", match="l7/http", action="dropped"): 1,
    }


def test_reporter_and_protocol_on_http_requests() -> None:
    fm, reg = metrics(HUBBLE)
    h2 = replace(samples.http_response(),
                 l7=Layer7(L7Type.RESPONSE, 1_000_000, HTTP(200, "GET", "http://echo/", "HTTP/2")),
                 traffic_direction=TrafficDirection.INGRESS)
    fm.observe_many([samples.http_response(), h2])
    got = series(scrape(reg), "hubble_http_requests_total")
    common = dict(method="GET", status="200", source_workload="shop/web",
                  destination_workload="shop/echo")
    assert got == {labels(protocol="HTTP/1.1", reporter="client", **common): 1,
                   labels(protocol="HTTP/2", reporter="server", **common): 1}


def test_hostile_protocol_values_collapse_into_other() -> None:
    fm, reg = metrics(MetricsConfig(hubble_names=True, max_label_values=2))
    for i in range(5):
        fm.observe(replace(samples.http_response(), l7=Layer7(
            L7Type.RESPONSE, 1, HTTP(200, "GET", "http://echo/", f"HTTP/{i}"))))
    got = scrape(reg)
    protocols = {dict(k)["protocol"] for k in series(got, "hubble_http_requests_total")}
    assert protocols == {"HTTP/0", "HTTP/1", "other"}
    assert series(got, "tulle_metrics_label_overflow_total")[
        labels(metric="hubble_http_requests_total", label="protocol")] == 3


def test_tulle_names_keep_their_labels_unless_asked() -> None:
    fm, reg = metrics(MetricsConfig())
    fm.observe_many([samples.http_response(), samples.policy_drop()])
    got = scrape(reg)
    assert set(series(got, "tulle_http_requests_total")) == {labels(
        method="GET", code="200", source_workload="shop/web", destination_workload="shop/echo")}
    assert set(series(got, "tulle_policy_verdicts_total")) == {
        labels(direction="ingress", action="dropped")}
    asked = MetricsConfig(families={"http_requests": FamilyConfig(labels=("method", "reporter"))})
    fm, reg = metrics(asked)
    fm.observe(samples.http_response())
    assert set(series(scrape(reg), "tulle_http_requests_total")) == {
        labels(method="GET", reporter="client")}
