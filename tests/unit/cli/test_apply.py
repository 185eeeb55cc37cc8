"""`tulle apply` against a lab API server on loopback: server-side apply with field manager
``tulle``, all-or-nothing batches (Namespaces and CRDs the batch creates included), custom
resources through discovery, and errors that name the object, the field or the server."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Any

import yaml
from lightkube import Client, KubeConfig
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import ConfigMap

from lab.apiserver.certs import write_kubeconfig
from lab.store import Store

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
CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.example.com"},
    "spec": {
        "group": "example.com",
        "scope": "Namespaced",
        "names": {"kind": "Widget", "plural": "widgets", "singular": "widget",
                  "shortNames": ["wdg"]},
        "versions": [{
            "name": "v1", "served": True, "storage": True,
            "additionalPrinterColumns": [
                {"name": "Size", "type": "integer", "jsonPath": ".spec.size"}],
            "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                "spec": {"type": "object", "properties": {
                    "size": {"type": "integer", "minimum": 1}}}}}},
        }],
    },
}


def _widget(size: int, name: str = "w1") -> dict[str, Any]:
    return {"apiVersion": "example.com/v1", "kind": "Widget",
            "metadata": {"name": name, "namespace": "default"}, "spec": {"size": size}}


def _stored(run, kind: str) -> list[dict[str, Any]]:
    with Store(run.store) as store:
        return store.list(kind)[0]


def _names(run, kind: str) -> set[str]:
    return {o["metadata"]["name"] for o in _stored(run, kind)}


def test_apply_creates_then_reports_unchanged_and_configured(run):
    first = run("apply", "-f", "-", input=NAMESPACE + "---\n" + SERVICE)
    assert first.exit_code == 0, first.output
    assert first.output.splitlines() == ["namespace/shop created", "service/echo created"]
    time.sleep(1.1)  # a repeated apply a second later still writes nothing
    assert run("apply", "-f", "-", input=SERVICE).output.strip() == "service/echo unchanged"
    changed = SERVICE.replace("port: 80", "port: 81")
    assert run("apply", "-f", "-", input=changed).output.strip() == "service/echo configured"
    [svc] = _stored(run, "Service")
    assert [p["port"] for p in svc["spec"]["ports"]] == [81]  # port 80 went, defaults and all
    assert [m["manager"] for m in svc["metadata"]["managedFields"]] == ["tulle"]


def test_service_keeps_its_cluster_ip_across_applies(run):
    run("apply", "-f", "-", input=NAMESPACE + "---\n" + SERVICE)
    ip = json.loads(run("get", "svc", "echo", "-n", "shop", "-o", "json").output)["spec"][
        "clusterIP"
    ]
    run("apply", "-f", "-", input=SERVICE.replace("port: 80", "port: 81"))
    again = json.loads(run("get", "svc", "echo", "-n", "shop", "-o", "json").output)
    assert again["spec"]["clusterIP"] == ip


def test_a_get_yaml_round_trip_applies_unchanged(run):
    run("apply", "-f", "-", input=NAMESPACE + "---\n" + SERVICE)
    dumped = run("get", "svc", "echo", "-n", "shop", "-o", "yaml", "--show-managed-fields").output
    assert "managedFields" in dumped and "resourceVersion" in dumped
    assert "managedFields" not in run("get", "svc", "echo", "-n", "shop", "-o", "yaml").output
    result = run("apply", "-f", "-", input=dumped)
    assert result.exit_code == 0, result.output


def test_invalid_route_is_refused_by_name_and_field_and_nothing_is_stored(run):
    """The Namespace is new, so the server can check the Service and route only once it
    exists: it is created, they are refused, and it is removed again."""
    result = run("apply", "-f", "-", input=NAMESPACE + "---\n" + SERVICE + "---\n" + BAD_ROUTE)
    assert result.exit_code == 1
    assert (
        "HTTPRoute shop/orders: spec.rules[0].matches[1].path.type: "
        'Unsupported value: "Regex": supported values: "Exact", "PathPrefix", "RegularExpression"'
        in result.output
    )
    assert "nothing was applied (namespace/shop, created to check the rest, removed again)" in (
        result.output
    )
    assert "shop" not in _names(run, "Namespace")
    assert _stored(run, "Service") == []


def test_an_invalid_object_in_existing_namespaces_writes_nothing(run):
    run("apply", "-f", "-", input=NAMESPACE)
    result = run("apply", "-f", "-", input=SERVICE + "---\n" + BAD_ROUTE)
    assert result.exit_code == 1 and "1 object(s) refused; nothing was applied" in result.output
    assert "removed again" not in result.output
    assert _stored(run, "Service") == [] and "shop" in _names(run, "Namespace")


def test_objects_in_a_missing_namespace_are_refused_by_name(run):
    result = run("apply", "-f", "-", input=SERVICE)
    assert result.exit_code == 1
    assert 'Service shop/echo: namespaces "shop" not found' in result.output


def test_unknown_kind_missing_fields_and_bad_yaml_are_clear_errors(run):
    unknown = run("apply", "-f", "-", input="apiVersion: v1\nkind: Gizmo\nmetadata: {name: x}\n")
    assert unknown.exit_code == 1
    assert '<stdin>: Gizmo x: no matches for kind "Gizmo" in version "v1"' in unknown.output
    nameless = run("apply", "-f", "-", input="apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n")
    assert nameless.exit_code == 1
    assert "ConfigMap object: metadata.name is required" in nameless.output
    broken = run("apply", "-f", "-", input="kind: [unclosed\n")
    assert broken.exit_code == 1 and "invalid YAML" in broken.output


def test_strict_field_validation_names_the_unknown_field(run):
    result = run("apply", "-f", "-", input=(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, colour: red}\ndata: {a: '1'}\n"))
    assert result.exit_code == 1 and 'unknown field "metadata.colour"' in result.output
    assert _stored(run, "ConfigMap") == []


def test_directories_and_multi_document_files(run, tmp_path: Path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "a.yaml").write_text(NAMESPACE)
    (tmp_path / "m" / "b.yaml").write_text(SERVICE + "---\n" + SERVICE.replace("echo", "two"))
    (tmp_path / "m" / "notes.txt").write_text("not a manifest")
    result = run("apply", "-f", str(tmp_path / "m"))
    assert result.exit_code == 0, result.output
    assert _names(run, "Service") == {"echo", "two"}


def test_a_crd_and_objects_of_its_kind_in_one_apply(run):
    docs = yaml.safe_dump_all([_widget(3), CRD])  # the CRD is applied first whatever the order
    result = run("apply", "-f", "-", input=docs)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "customresourcedefinition.apiextensions.k8s.io/widgets.example.com created",
        "widget.example.com/w1 created",
    ]
    table = run("get", "wdg").output.splitlines()
    assert table[0].split() == ["NAME", "SIZE", "AGE"] and table[1].split()[:2] == ["w1", "3"]
    assert run("get", "widgets.example.com", "w1", "-o", "name").output.strip() == (
        "widget.example.com/w1"
    )


def test_a_custom_resource_its_schema_refuses_takes_its_new_crd_back_out(run):
    result = run("apply", "-f", "-", input=yaml.safe_dump_all([CRD, _widget(0)]))
    assert result.exit_code == 1
    assert "Widget default/w1: spec.size" in result.output
    assert "customresourcedefinition.apiextensions.k8s.io/widgets.example.com" in result.output
    assert "widgets.example.com" not in _names(run, "CustomResourceDefinition")
    assert run("get", "widgets").exit_code == 1  # not served any more


def test_fields_another_manager_owns_conflict_unless_forced(run):
    client = Client(config=KubeConfig.from_file(run.api.kubeconfig))
    client.apply(ConfigMap(metadata=ObjectMeta(name="c", namespace="default"), data={"a": "1"}),
                 field_manager="someone-else")
    mine = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {a: '2'}\n"
    refused = run("apply", "-f", "-", input=mine)
    assert refused.exit_code == 1
    assert "Apply failed with 1 conflict" in refused.output and "someone-else" in refused.output
    assert run("apply", "--force-conflicts", "-f", "-", input=mine).exit_code == 0
    [cm] = _stored(run, "ConfigMap")
    assert cm["data"] == {"a": "2"}


def test_dry_run_writes_nothing(run):
    result = run("apply", "--dry-run", "-f", "-", input=NAMESPACE + "---\n" + SERVICE)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "namespace/shop checked (server dry run)",
        "service/echo not checked: it needs a Namespace or kind this apply creates",
    ]
    assert "shop" not in _names(run, "Namespace")


def test_forbidden_names_the_object_and_the_identity(run, tmp_path: Path):
    token = run.api.service_account_token("default", "robot")
    robot = run.api.kubeconfig_for(tmp_path / "robot.kubeconfig", token, "robot")
    denied = run("get", "configmaps", "--kubeconfig", str(robot))
    assert denied.exit_code == 1
    assert denied.output.startswith("Error from server (Forbidden): ")
    assert "system:serviceaccount:default:robot" in denied.output
    write = run("apply", "--kubeconfig", str(robot), "-f", "-",
                input="apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n")
    assert write.exit_code == 1 and "ConfigMap default/c: configmaps \"c\" is forbidden" in (
        write.output
    )
    assert _stored(run, "ConfigMap") == []


def test_an_unreachable_api_server_is_named(run, tmp_path: Path):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dead = write_kubeconfig(tmp_path / "dead", "t", f"https://127.0.0.1:{port}", run.api.creds)
    result = run("apply", "--kubeconfig", str(dead), "-f", "-", input=NAMESPACE)
    assert result.exit_code == 1
    assert f"cannot reach the Kubernetes API at https://127.0.0.1:{port} (--kubeconfig)" in (
        result.output
    )


def test_namespace_flag_fills_in_and_must_agree(run):
    run("apply", "-f", "-", input=NAMESPACE)
    bare = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n"
    assert run("apply", "-n", "shop", "-f", "-", input=bare).exit_code == 0
    assert [o["metadata"]["namespace"] for o in _stored(run, "ConfigMap")] == ["shop"]
    other = bare.replace("{name: c}", "{name: d, namespace: default}")
    refused = run("apply", "-n", "shop", "-f", "-", input=other)
    assert refused.exit_code == 1
    assert "ConfigMap default/d: the namespace of the object does not match --namespace shop" in (
        refused.output
    )


GATEWAY = """
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: default}
spec:
  gatewayClassName: tulle
  listeners: [{name: http, port: 80, protocol: HTTP}]
"""
BACKEND_CLIENT_CERT = "  tls:\n    backend:\n      clientCertificateRef: {name: client-cert}\n"


def test_a_gateway_whose_new_version_drops_spec_tls_applies(run):
    """The reported bug: the server defaults ``clientCertificateRef.kind: Secret``, which
    nobody applied; dropping ``spec.tls`` left that half reference behind and the apply was
    refused (``clientCertificateRef.name: Required value``). kubectl apply worked."""
    first = run("apply", "-f", "-", input=GATEWAY + BACKEND_CLIENT_CERT)
    assert first.exit_code == 0, first.output
    [gateway] = _stored(run, "Gateway")
    assert gateway["spec"]["tls"]["backend"]["clientCertificateRef"]["kind"] == "Secret"
    second = run("apply", "-f", "-", input=GATEWAY)
    assert second.exit_code == 0, second.output
    assert second.output.strip() == "gateway.gateway.networking.k8s.io/gw configured"
    [gateway] = _stored(run, "Gateway")
    assert "tls" not in gateway["spec"]
    assert gateway["spec"]["listeners"][0]["name"] == "http"
