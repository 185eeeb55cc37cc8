"""The runner against a fake lab: cases whose kinds are not served are skipped, not run;
a check's failure (or crash) is a failed case with its message; objects are deleted after."""

from __future__ import annotations

from conformance.case import Case, CaseFailed
from conformance.runner import run

NS = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "t"}}
DEPLOY = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "namespace": "t"},
          "spec": {"replicas": 1}}
ROUTE = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
         "metadata": {"name": "r", "namespace": "t"}, "spec": {}}
READY = {"metadata": {"name": "d-1"}, "status": {"conditions": [{"type": "Ready", "status": "True"}]}}


class FakeLab:
    name = "fake"

    def __init__(self, served):
        self.served, self.applied, self.deleted = served, [], []

    def serves(self, kind):
        return kind in self.served

    def apply(self, objects):
        self.applied.extend(objects)

    def delete(self, objects):
        self.deleted.extend(objects)

    def get(self, kind, namespace):
        assert kind == "pods"
        return [READY]


def fail(lab):
    raise CaseFailed("status 404, want 200")


def crash(lab):
    raise KeyError("pod")


def test_skips_unserved_kinds_records_failures_and_cleans_up():
    ran = []
    cases = [
        Case("Passes", "GATEWAY-HTTP", ("Gateway", "HTTPRoute"), (NS, DEPLOY, ROUTE), ran.append),
        Case("Fails", "GATEWAY-HTTP", ("Gateway", "HTTPRoute"), (NS, DEPLOY, ROUTE), fail),
        Case("Crashes", "GATEWAY-HTTP", ("Gateway", "HTTPRoute"), (NS,), crash),
        Case("TCP", "GATEWAY-TCP", ("Gateway", "TCPRoute"), (NS, {**ROUTE, "kind": "TCPRoute"}),
             ran.append, kinds=("TCPRoute",)),
    ]
    lab = FakeLab({"HTTPRoute"})
    results = run(lab, cases, progress=lambda _m: None)
    assert [(r.name, r.outcome) for r in results] == [
        ("Passes", "passed"), ("Fails", "failed"), ("Crashes", "failed"), ("TCP", "skipped")]
    assert results[1].detail == "status 404, want 200"
    assert results[2].detail == "KeyError: 'pod'"
    assert "TCPRoute" in results[3].detail
    assert len(ran) == 1  # the TCP case's check never ran
    assert [o["kind"] for o in lab.applied] == ["Namespace", "Deployment", "HTTPRoute"]  # once each
    assert [o["kind"] for o in lab.deleted] == ["HTTPRoute", "Deployment", "Namespace"]
