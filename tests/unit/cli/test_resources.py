"""apply/get/delete/describe/wait against a store file: no lab, no root."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from agent.cli.main import cli
from agent.store import Store

SERVICE = """
apiVersion: v1
kind: Service
metadata: {name: echo, namespace: shop}
spec:
  selector: {app: echo}
  ports: [{name: http, port: 80, targetPort: http}]
"""
NAMESPACE = "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n"
BAD_ROUTE = """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: orders, namespace: shop}
spec:
  parentRefs: [{name: echo, kind: Service, group: ""}]
  rules:
    - matches:
        - path: {type: PathPrefix, value: /a}
        - path: {type: Regex, value: "/b.*"}
"""


def test_apply_creates_then_reports_unchanged_and_configured(run):
    first = run("apply", "-f", "-", input=NAMESPACE + "---\n" + SERVICE)
    assert first.exit_code == 0, first.output
    assert first.output.splitlines() == ["namespace/shop created", "service/echo created"]
    assert run("apply", "-f", "-", input=SERVICE).output.strip() == "service/echo unchanged"
    changed = SERVICE.replace("port: 80", "port: 81")
    assert run("apply", "-f", "-", input=changed).output.strip() == "service/echo configured"


def test_service_gets_a_stable_cluster_ip_in_the_service_range(run):
    run("apply", "-f", "-", input=NAMESPACE + "---\n" + SERVICE)
    svc = json.loads(run("get", "svc", "echo", "-n", "shop", "-o", "json").output)
    ip = svc["spec"]["clusterIP"]
    assert ip.startswith("10.96.")
    run("apply", "-f", "-", input=SERVICE.replace("port: 80", "port: 81"))
    again = json.loads(run("get", "svc", "echo", "-n", "shop", "-o", "json").output)
    assert again["spec"]["clusterIP"] == ip


def test_invalid_httproute_is_refused_by_name_and_field_and_nothing_is_stored(run):
    result = run("apply", "-f", "-", input=NAMESPACE + "---\n" + SERVICE + "---\n" + BAD_ROUTE)
    assert result.exit_code != 0
    assert (
        'HTTPRoute shop/orders: spec.rules[0].matches[1].path.type: unsupported value "Regex"'
        in result.output
    )
    assert "nothing was applied" in result.output
    with Store(run.store) as store:
        objs, _ = store.list()
    assert objs == []  # the valid Namespace and Service in the same batch were not stored either


def test_objects_in_a_missing_namespace_are_refused(run):
    result = run("apply", "-f", "-", input=SERVICE)
    assert result.exit_code != 0
    assert "Service shop/echo: metadata.namespace: namespace 'shop' not found" in result.output


def test_unknown_kind_and_bad_yaml_are_clear_errors(run):
    unknown = run("apply", "-f", "-", input="apiVersion: v1\nkind: Gizmo\nmetadata: {name: x}\n")
    assert unknown.exit_code != 0 and 'unknown kind "Gizmo"' in unknown.output
    broken = run("apply", "-f", "-", input="kind: [unclosed\n")
    assert broken.exit_code != 0 and "invalid YAML" in broken.output
    assert run("get", "gizmos").exit_code != 0


def test_get_formats_and_kinds_by_short_name(run, tmp_path: Path):
    manifest = tmp_path / "app.yaml"
    manifest.write_text(NAMESPACE + "---\n" + SERVICE)
    assert run("apply", "-f", str(manifest)).exit_code == 0
    table = run("get", "svc", "-A").output.splitlines()
    assert table[0].split() == ["NAMESPACE", "NAME", "TYPE", "CLUSTER-IP", "PORT(S)", "AGE"]
    assert table[1].split()[:3] == ["shop", "echo", "ClusterIP"]
    as_yaml = yaml.safe_load(run("get", "services", "-n", "shop", "-o", "yaml").output)
    assert as_yaml["kind"] == "List" and as_yaml["items"][0]["metadata"]["name"] == "echo"
    assert run("get", "svc", "-n", "shop", "-o", "name").output.strip() == "services/echo"
    assert "not found" in run("get", "svc", "nope", "-n", "shop").output


def test_describe_and_delete(run, tmp_path: Path):
    manifest = tmp_path / "app.yaml"
    manifest.write_text(NAMESPACE + "---\n" + SERVICE)
    run("apply", "-f", str(manifest))
    described = run("describe", "service", "echo", "-n", "shop").output
    assert "Name:         echo" in described and "Namespace:    shop" in described
    assert run("delete", "-f", str(manifest)).output.splitlines() == [
        "namespace/shop deleted",
        "service/echo deleted",
    ]
    missing = run("delete", "svc", "echo", "-n", "shop")
    assert missing.exit_code == 1 and 'Service "echo" not found' in missing.output
    assert run("delete", "svc", "echo", "-n", "shop", "--ignore-not-found").exit_code == 0


def test_wait_times_out_with_the_pending_names(run):
    run("apply", "-f", "-", input=NAMESPACE + "---\n" + SERVICE)
    result = run(
        "wait", "svc", "echo", "-n", "shop", "--for", "condition=Ready", "--timeout", "0.3"
    )
    assert result.exit_code != 0 and "timed out" in result.output and "echo" in result.output


def test_no_lab_and_no_store_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("TULLE_STATE_DIR", str(tmp_path))
    monkeypatch.delenv("TULLE_STORE", raising=False)
    result = CliRunner().invoke(cli, ["get", "pods"])
    assert result.exit_code != 0 and "no lab named 'lab' is running" in result.output
