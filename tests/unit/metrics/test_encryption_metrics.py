"""Encrypted flows and refused mTLS tunnels in the flow metrics."""

from __future__ import annotations

import dataclasses

from prometheus_client import CollectorRegistry

from agent.flows.flow import IP
from agent.metrics import FamilyConfig, FlowMetrics, MetricsConfig
from tests.unit.flows import samples
from tests.unit.flows.test_tunnelflows import built
from tests.unit.flows.tunnelsamples import ACCEPTED, REFUSED, UNKNOWN_CA
from tests.unit.metrics.scrape import labels, scrape, series


def test_encrypted_flows_and_refusals_are_counted() -> None:
    registry = CollectorRegistry()
    fm = FlowMetrics(None, registry)
    kernel = dataclasses.replace(samples.syn(), ip=IP("10.244.1.5", "10.244.2.7", encrypted=True))
    fm.observe_many(
        [
            built(ACCEPTED),
            built(ACCEPTED),
            built(REFUSED),
            built(UNKNOWN_CA),
            kernel,
            *samples.all_samples(),
        ]
    )
    got = scrape(registry)
    assert series(got, "tulle_encrypted_flows_total") == {
        labels(type="Trace", subtype="from-crypto", verdict="FORWARDED"): 2,
        labels(type="Drop", subtype="", verdict="DROPPED"): 2,
        labels(type="Trace", subtype="to-endpoint", verdict="FORWARDED"): 1,
    }
    assert series(got, "tulle_tunnel_refused_total") == {
        labels(reason="MTLS_WRONG_IDENTITY", side="client"): 1,
        labels(reason="MTLS_UNKNOWN_CA", side="server"): 1,
    }
    drops = series(got, "tulle_drop_total")
    assert drops[labels(reason="MTLS_UNKNOWN_CA", protocol="TCP")] == 1


def test_plaintext_flows_count_nowhere_here_and_families_can_be_turned_off() -> None:
    registry = CollectorRegistry()
    fm = FlowMetrics(None, registry)
    fm.observe_many(samples.all_samples())
    got = scrape(registry)
    assert series(got, "tulle_encrypted_flows_total") == {}
    assert series(got, "tulle_tunnel_refused_total") == {}
    registry = CollectorRegistry()
    off = MetricsConfig(
        families={
            "encrypted_flows": FamilyConfig(enabled=False),
            "tunnel_refused": FamilyConfig(labels=("reason",)),
        }
    )
    fm = FlowMetrics(off, registry)
    fm.observe_many([built(ACCEPTED), built(REFUSED)])
    got = scrape(registry)
    assert not any(name == "tulle_encrypted_flows_total" for name, _ in got)
    assert series(got, "tulle_tunnel_refused_total") == {labels(reason="MTLS_WRONG_IDENTITY"): 1}


def test_reasons_are_bounded_by_the_series_cap() -> None:
    registry = CollectorRegistry()
    cfg = MetricsConfig(families={"tunnel_refused": FamilyConfig(max_label_values=2)})
    fm = FlowMetrics(cfg, registry)
    for reason in (
        "MTLS_UNKNOWN_CA",
        "MTLS_CERT_EXPIRED",
        "MTLS_WRONG_IDENTITY",
        "MTLS_HANDSHAKE_FAILED",
    ):
        fm.observe(built(dataclasses.replace(REFUSED, drop_reason=reason)))
    reasons = {dict(k)["reason"] for k in series(scrape(registry), "tulle_tunnel_refused_total")}
    assert len(reasons) == 3 and cfg.overflow_value in reasons
