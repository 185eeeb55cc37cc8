"""Every metrics port is reachable by a scraper: each Service's named port is a port of the
workload it selects, on the address that workload's flags bind; the ServiceMonitor overlay
points at those Services by label and port name."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.deploy.rendered import one, render

SERVICES = {"tulle-agent-metrics": ("DaemonSet", "tulle-agent", "--metrics-address=$(HOST_IP):"),
            "tulle-waypoint-metrics": ("DaemonSet", "tulle-waypoint",
                                       "--metrics-address=$(HOST_IP):"),
            "tulle-controlplane-metrics": ("Deployment", "tulle-controlplane",
                                           "--metrics=0.0.0.0:"),
            "tulle-controller-metrics": ("Deployment", "tulle-controller",
                                         "--metrics=0.0.0.0:")}


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return selector.items() <= labels.items()


@pytest.mark.parametrize("service_name", sorted(SERVICES))
def test_the_metrics_service_reaches_the_port_the_process_binds(service_name: str) -> None:
    objs = render("production")
    kind, workload_name, flag = SERVICES[service_name]
    service = one(objs, "Service", service_name)
    workload = one(objs, kind, workload_name)
    assert service["spec"]["clusterIP"] == "None"  # one target per pod
    assert _selects(service["spec"]["selector"], workload["spec"]["template"]["metadata"]["labels"])
    [port] = service["spec"]["ports"]
    [container] = workload["spec"]["template"]["spec"]["containers"]
    named = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert named[port["targetPort"]] == port["port"]
    assert f"{flag}{port['port']}" in container["args"]


def _service_monitors() -> list[dict[str, Any]]:
    return [o for o in render("servicemonitor") if o["kind"] == "ServiceMonitor"]


def test_the_servicemonitor_overlay_is_production_plus_monitors() -> None:
    rest = [o for o in render("servicemonitor") if o["kind"] != "ServiceMonitor"]
    assert rest == render("production")
    assert {m["metadata"]["name"] for m in _service_monitors()} == {
        "tulle-agent", "tulle-waypoint", "tulle-controlplane", "tulle-controller"}


def test_each_monitor_scrapes_one_metrics_port() -> None:
    objs = render("servicemonitor")
    services = [o for o in objs if o["kind"] == "Service"]
    for monitor in _service_monitors():
        spec = monitor["spec"]
        assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
        [endpoint] = spec["endpoints"]
        scraped = [(s["metadata"]["name"], p["name"]) for s in services
                   if s["metadata"]["namespace"] in spec["namespaceSelector"]["matchNames"]
                   and _selects(spec["selector"]["matchLabels"], s["metadata"]["labels"])
                   for p in s["spec"]["ports"] if p["name"] == endpoint["port"]]
        assert [name for name, _ in scraped] == [f"{monitor['metadata']['name']}-metrics"]
