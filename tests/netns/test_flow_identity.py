"""Issue 11 item 1 in a lab: a pod's flows carry its ServiceAccount's SPIFFE ID (`default`
when the pod names none), and `tulle observe --from-identity/--to-identity` select by it."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from .conftest import Lab
from .test_datapath import apply, deployment, namespace, pods_of, service, wait_for

pytestmark = pytest.mark.netns

CALLER_ID = "spiffe://cluster.local/ns/ident/sa/caller-sa"
API_ID = "spiffe://cluster.local/ns/ident/sa/default"


def flows(lab: Lab, *args: str) -> list[dict[str, Any]]:
    out = lab.tulle("observe", "-o", "json", *args).stdout
    return [json.loads(line)["flow"] for line in out.splitlines() if '"flow"' in line]


def test_flows_carry_the_pods_spiffe_ids_and_filter_by_them(lab: Lab) -> None:
    caller = deployment("ident", "caller", 1, node="node1")
    caller["spec"]["template"]["spec"]["serviceAccountName"] = "caller-sa"
    apply(lab, namespace("ident"), deployment("ident", "api", 1, node="node2"),
          service("ident", "api"), caller)
    lab.wait_pods_ready("ident", 2, timeout=90)
    [pod] = pods_of(lab, "ident", "caller")
    assert pod["spec"]["serviceAccountName"] == "caller-sa"  # carried from the template
    name = pod["metadata"]["name"]
    wait_for(lambda: lab.exec("ident", name, "curl", "-s", "--max-time", "2", "http://api.ident/",
                              check=False).returncode == 0, what="service reachable")
    time.sleep(0.5)
    picked = flows(lab, "--last", "500", "--from-identity", CALLER_ID, "--to-identity", API_ID)
    assert picked, "no flow from the caller's identity to the api's"
    for f in picked:
        assert f["source"]["pod_name"] == name
        assert f["tulle"]["source_spiffe_id"] == CALLER_ID
        assert f["tulle"]["destination_spiffe_id"] == API_ID
    assert {f["node_name"] for f in picked if "node_name" in f} == {"node1", "node2"}
    # Nothing but the caller pod has the caller's identity.
    others = flows(lab, "--last", "500", "--from-identity", CALLER_ID, "--not", "--from-pod",
                   f"ident/{name}")
    assert others == []
