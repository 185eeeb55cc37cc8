"""get/describe/delete/wait against a lab API server on loopback: no lab, no root."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from agent.cli.main import cli
from lab.store import Store

SERVICE = """
apiVersion: v1
kind: Service
metadata: {name: echo, namespace: shop, labels: {app: echo}}
spec:
  selector: {app: echo}
  ports: [{name: http, port: 80, targetPort: http}]
"""
NAMESPACE = "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n"


@pytest.fixture
def shop(run):
    result = run("apply", "-f", "-", input=NAMESPACE + "---\n" + SERVICE)
    assert result.exit_code == 0, result.output
    return run


def test_get_prints_the_servers_table_with_a_namespace_column_across_namespaces(shop):
    table = shop("get", "svc", "-A").output.splitlines()
    assert table[0].split() == [
        "NAMESPACE",
        "NAME",
        "TYPE",
        "CLUSTER-IP",
        "EXTERNAL-IP",
        "PORT(S)",
        "AGE",
    ]
    assert table[1].split()[:3] == ["shop", "echo", "ClusterIP"]
    wide = shop("get", "services", "-n", "shop", "-o", "wide").output.splitlines()
    assert wide[0].split()[-1] == "SELECTOR" and wide[1].split()[-1] == "app=echo"


def test_get_yaml_json_and_name_like_kubectl(shop):
    listed = yaml.safe_load(shop("get", "services", "-n", "shop", "-o", "yaml").output)
    assert listed["kind"] == "List"
    [item] = listed["items"]
    assert (item["apiVersion"], item["kind"], item["metadata"]["name"]) == ("v1", "Service", "echo")
    one = json.loads(shop("get", "svc", "echo", "-n", "shop", "-o", "json").output)
    assert one["kind"] == "Service" and one["spec"]["clusterIP"].startswith("10.96.")
    assert shop("get", "svc", "-n", "shop", "-o", "name").output.strip() == "service/echo"
    slash = json.loads(shop("get", "service/echo", "-n", "shop", "-o", "json").output)
    assert slash["metadata"]["uid"] == one["metadata"]["uid"]
    assert shop("get", "ns", "shop", "-o", "name").output.strip() == "namespace/shop"


def test_get_by_kind_plural_short_name_and_group(shop):
    shop("apply", "-f", "-", input=_route("r1"))
    for text in (
        "httproute",
        "httproutes",
        "HTTPRoute",
        "httproutes.gateway.networking.k8s.io",
        "httproute.v1.gateway.networking.k8s.io",
    ):
        out = shop("get", text, "-n", "shop", "-o", "name")
        assert out.output.strip() == "httproute.gateway.networking.k8s.io/r1", (text, out.output)


def test_label_selectors_reach_the_server(shop):
    assert shop("get", "svc", "-A", "-l", "app=echo", "-o", "name").output.strip() == "service/echo"
    assert shop("get", "svc", "-A", "-l", "app!=echo", "-o", "name").stdout.strip() == ""
    bad = shop("get", "svc", "-l", "app in (x")
    assert bad.exit_code == 1
    assert "Error from server (BadRequest)" in bad.output and "labelSelector" in bad.output


def test_not_found_and_unknown_kinds_read_as_kubectl(shop):
    missing = shop("get", "svc", "nope", "-n", "shop")
    assert missing.exit_code == 1
    assert missing.output.strip() == 'Error from server (NotFound): services "nope" not found'
    unknown = shop("get", "gizmos")
    assert unknown.exit_code == 1 and 'the server doesn\'t have a resource type "gizmos"' in (
        unknown.output
    )
    empty = shop("get", "pods", "-n", "shop")
    assert empty.exit_code == 0 and "No resources found in shop namespace." in empty.output


def test_namespace_defaults_to_the_contexts(shop):
    # The lab kubeconfig's context says "default": a bare `get svc` lists there, not in shop.
    assert "No resources found in default namespace." in shop("get", "svc").output


def test_describe_shows_conditions_first_including_route_parents(shop):
    shop("apply", "-f", "-", input=_route("r1"))
    with Store(shop.store) as store:
        store.update_status(
            "HTTPRoute",
            "shop",
            "r1",
            {
                "parents": [
                    {
                        "parentRef": {"name": "echo"},
                        "controllerName": "tulle.dev/gateway",
                        "conditions": [
                            {"type": "Accepted", "status": "True", "reason": "Accepted"}
                        ],
                    }
                ]
            },
        )
    described = shop("describe", "httproute", "r1", "-n", "shop").output
    assert "Name:         r1" in described and "Namespace:    shop" in described
    assert "parent echo: Accepted=True (Accepted)" in described
    assert "Events:       <none>" in described
    missing = shop("describe", "svc", "nope", "-n", "shop")
    assert missing.exit_code == 1 and "NotFound" in missing.output


def test_describe_lists_the_objects_events_only(shop):
    with Store(shop.store) as store:
        for name, involved in (("echo.1", "echo"), ("other.1", "other")):
            store.create(
                {
                    "apiVersion": "v1",
                    "kind": "Event",
                    "metadata": {"name": name, "namespace": "shop"},
                    "involvedObject": {"kind": "Service", "name": involved, "namespace": "shop"},
                    "type": "Warning",
                    "reason": "NoEndpoints",
                    "message": f"{involved} has none",
                    "source": {"component": "tulle-lab-controller"},
                    "count": 3,
                    "lastTimestamp": "2026-01-01T00:00:00Z",
                }
            )
    described = shop("describe", "svc", "echo", "-n", "shop").output
    events = described[described.index("Events:") :].splitlines()
    assert events[1].split() == ["Type", "Reason", "Age", "From", "Message"]
    assert events[3].split()[:2] == ["Warning", "NoEndpoints"]
    assert "(x3)" in events[3] and events[3].endswith("tulle-lab-controller  echo has none")
    assert len(events) == 4  # other's event is not shown


def test_delete_by_name_by_slash_and_from_manifests(shop, tmp_path: Path):
    manifest = tmp_path / "app.yaml"
    manifest.write_text(NAMESPACE + "---\n" + SERVICE)
    # Namespaces go last, so the Service is deleted rather than reported missing.
    deleted = shop("delete", "-f", str(manifest))
    assert deleted.exit_code == 0, deleted.output
    assert deleted.output.splitlines() == ["service/echo deleted", "namespace/shop deleted"]
    missing = shop("delete", "svc", "echo", "-n", "shop")
    assert missing.exit_code == 1
    assert 'Error from server (NotFound): services "echo" not found' in missing.output
    assert shop("delete", "svc", "echo", "-n", "shop", "--ignore-not-found").exit_code == 0
    shop("apply", "-f", str(manifest))
    assert shop("delete", "service/echo", "-n", "shop").output.strip() == "service/echo deleted"
    assert shop("delete", "-f", str(manifest), "svc").exit_code == 2  # not both forms


def test_wait_times_out_with_the_pending_names(shop):
    result = shop(
        "wait", "svc", "echo", "-n", "shop", "--for", "condition=Ready", "--timeout", "0.3s"
    )
    assert result.exit_code != 0 and "timed out" in result.output
    assert "service/echo" in result.output


def test_wait_returns_once_the_condition_is_written(shop):
    def later() -> None:
        time.sleep(0.5)
        with Store(shop.store) as store:
            store.update_status(
                "HTTPRoute",
                "shop",
                "r1",
                {
                    "parents": [
                        {
                            "parentRef": {"name": "echo"},
                            "controllerName": "tulle.dev/gateway",
                            "conditions": [{"type": "Accepted", "status": "True"}],
                        }
                    ]
                },
            )

    shop("apply", "-f", "-", input=_route("r1"))
    writer = threading.Thread(target=later)
    writer.start()
    result = shop(
        "wait", "httproute/r1", "-n", "shop", "--for=condition=Accepted", "--timeout", "20s"
    )
    writer.join()
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "httproute.gateway.networking.k8s.io/r1 condition met"


def test_wait_for_delete(shop):
    assert shop("delete", "svc", "echo", "-n", "shop").exit_code == 0
    gone = shop("wait", "svc", "echo", "-n", "shop", "--for=delete", "--timeout", "5s")
    assert gone.exit_code == 0 and "service/echo deleted" in gone.output
    assert shop("wait", "svc", "echo", "--timeout", "soon").exit_code == 2  # not a duration


def test_no_cluster_at_all_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("TULLE_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path))
    for var in ("TULLE_LAB", "KUBECONFIG", "KUBERNETES_SERVICE_HOST"):
        monkeypatch.delenv(var, raising=False)
    result = CliRunner().invoke(cli, ["get", "pods"])
    assert result.exit_code == 1
    assert "no cluster to talk to: no lab named 'lab' is up" in result.output
    named = CliRunner().invoke(cli, ["--lab", "other", "get", "pods"])
    assert named.exit_code == 1 and "lab 'other' is not up" in named.output


def _route(name: str) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": {"name": name, "namespace": "shop"},
            "spec": {
                "parentRefs": [{"name": "echo", "kind": "Service", "group": ""}],
                "rules": [{"backendRefs": [{"name": "echo", "port": 80}]}],
            },
        }
    )


def test_delete_by_selector_or_all(shop):
    shop(
        "apply",
        "-f",
        "-",
        input=SERVICE.replace("name: echo", "name: two").replace(
            "labels: {app: echo}", "labels: {app: two}"
        ),
    )
    by_label = shop("delete", "svc", "-n", "shop", "-l", "app=two")
    assert by_label.exit_code == 0 and by_label.output.strip() == "service/two deleted"
    everything = shop("delete", "svc", "-n", "shop", "--all")
    assert everything.output.strip() == "service/echo deleted"
    assert shop("delete", "svc", "echo", "--all").exit_code == 2  # names or --all, not both


def test_get_shows_what_it_found_then_what_it_did_not(shop):
    result = shop("get", "svc", "echo", "nope", "-n", "shop")
    assert result.exit_code == 1
    assert result.stdout.splitlines()[1].split()[0] == "echo"
    assert 'Error from server (NotFound): services "nope" not found' in result.stderr
    named = shop("get", "svc/nope", "svc/echo", "-n", "shop", "-o", "name")
    assert named.exit_code == 1 and named.stdout.strip() == "service/echo"


def test_a_gateway_api_kind_on_a_cluster_without_its_crds_says_what_to_install(tmp_path: Path):
    from tests.unit.cli.labapi import lab_api

    with lab_api(tmp_path / "store.db", gateway_api=False) as api:
        kubeconfig = ["--kubeconfig", str(api.kubeconfig)]
        routes = CliRunner().invoke(cli, [*kubeconfig, "get", "httproutes"])
        assert routes.exit_code == 1
        assert 'the server doesn\'t have a resource type "httproutes"' in routes.output
        assert "deploy/crds/gateway-api" in routes.output
        gizmos = CliRunner().invoke(cli, [*kubeconfig, "get", "gizmos"])
        assert gizmos.exit_code == 1 and "deploy/crds" not in gizmos.output
