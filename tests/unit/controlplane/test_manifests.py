"""deploy/controlplane: the YAML parses, names agree with the code (Service, ServiceAccount,
port, namespace, Secret and ConfigMap names), and the RBAC allows exactly what the service
does (judged by the lab's RBAC authorizer, which the lab runs it under)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from controlplane import roots
from controlplane.__main__ import parser
from controlplane.service import SERVICE_NAME, serving_names
from lab.apiserver.auth import service_account_user
from lab.apiserver.identities import MANIFESTS, SEEDED_KINDS
from lab.apiserver.rbac import Attributes, allowed
from lab.controlplane import CA_ACCOUNT, CA_PORT

DEPLOY = Path(__file__).resolve().parents[3] / "deploy" / "controlplane"


def _docs(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((DEPLOY / name).read_text()) if d]


def _one(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    [found] = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return found


def test_the_deployment_and_service_agree_with_the_code() -> None:
    docs = _docs("controlplane.yaml")
    deployment = _one(docs, "Deployment", SERVICE_NAME)
    service = _one(docs, "Service", SERVICE_NAME)
    assert {d["metadata"]["namespace"] for d in docs} == {roots.NAMESPACE}
    pod = deployment["spec"]["template"]
    assert pod["spec"]["serviceAccountName"] == CA_ACCOUNT == SERVICE_NAME
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod["metadata"]["labels"].items()
    assert service["spec"]["selector"] == selector
    [container] = pod["spec"]["containers"]
    [port] = service["spec"]["ports"]
    assert port["port"] == CA_PORT == 15012
    named = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert named[port["targetPort"]] == CA_PORT
    args = parser().parse_args(container["args"])  # the flags exist and parse
    assert args.listen == ("0.0.0.0", CA_PORT) and args.namespace == roots.NAMESPACE
    assert args.kubeconfig is None  # in-cluster ServiceAccount
    assert serving_names(roots.NAMESPACE)[0] == f"{SERVICE_NAME}.{roots.NAMESPACE}.svc"


def test_the_rbac_is_seeded_by_the_lab_and_names_the_account() -> None:
    docs = _docs("rbac.yaml")
    assert DEPLOY / "rbac.yaml" in MANIFESTS
    assert {d["kind"] for d in docs} <= SEEDED_KINDS
    _one(docs, "ServiceAccount", CA_ACCOUNT)
    for binding in (d for d in docs if d["kind"].endswith("Binding")):
        ref = binding["roleRef"]
        _one(docs, ref["kind"], ref["name"])  # every binding's role is defined here


CA = service_account_user("tulle-system", CA_ACCOUNT)
AGENT = service_account_user("tulle-system", "tulle-agent")


@pytest.mark.parametrize(
    ("user", "attrs", "ok"),
    [
        (CA, Attributes("create", "authentication.k8s.io", "tokenreviews"), True),
        (CA, Attributes("list", "", "pods"), True),
        (CA, Attributes("watch", "", "pods", namespace="shop"), True),
        (CA, Attributes("get", "", "secrets", namespace="tulle-system", name="tulle-ca"), True),
        (CA, Attributes("create", "", "secrets", namespace="tulle-system"), True),
        (CA, Attributes("update", "", "configmaps", namespace="tulle-system",
                        name="tulle-trust-bundle"), True),
        (CA, Attributes("update", "", "configmaps", namespace="tulle-system", name="other"), False),
        (CA, Attributes("get", "", "secrets", namespace="tulle-system", name="other"), False),
        (CA, Attributes("get", "", "secrets", namespace="shop", name="x"), False),
        (CA, Attributes("list", "", "secrets", namespace="tulle-system"), False),
        (CA, Attributes("delete", "", "secrets", namespace="tulle-system", name="tulle-ca"), False),
        (CA, Attributes("create", "", "pods", namespace="tulle-system"), False),
        (AGENT, Attributes("watch", "", "configmaps", namespace="tulle-system",
                           name="tulle-trust-bundle"), True),
        (AGENT, Attributes("watch", "", "configmaps", namespace="tulle-system"), False),
        (AGENT, Attributes("get", "", "configmaps", namespace="tulle-system", name="other"), False),
        (AGENT, Attributes("get", "", "configmaps", namespace="shop", name="x"), False),
        (AGENT, Attributes("create", "authentication.k8s.io", "tokenreviews"), False),
    ],
)
def test_rbac_allows_what_the_service_does_and_no_more(
    user: Any, attrs: Attributes, ok: bool
) -> None:
    objs = [d for path in MANIFESTS for d in yaml.safe_load_all(path.read_text()) if d]
    assert allowed(user, attrs, objs) is ok


def test_the_system_namespace_flag_and_its_old_name() -> None:
    base = ["--listen", "0.0.0.0:15012"]
    assert parser().parse_args(base).namespace is None  # then $TULLE_SYSTEM_NAMESPACE, else default
    assert parser().parse_args([*base, "--system-namespace", "mesh"]).namespace == "mesh"
    assert parser().parse_args([*base, "--namespace", "mesh"]).namespace == "mesh"


@pytest.mark.parametrize("bad", ["Kube_System", "", "a.b"])
def test_a_bad_system_namespace_is_a_usage_error(
    bad: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        parser().parse_args(["--listen", "0.0.0.0:1", "--system-namespace", bad])
    assert info.value.code == 2
    assert "system namespace" in capsys.readouterr().err


def test_a_bad_system_namespace_from_the_environment_stops_the_service(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from controlplane.__main__ import main

    monkeypatch.setenv("TULLE_SYSTEM_NAMESPACE", "Not/A/Namespace")
    assert main(["--listen", "127.0.0.1:0", "--kubeconfig", "/nonexistent"]) == 2
    assert "TULLE_SYSTEM_NAMESPACE: system namespace 'Not/A/Namespace'" in capsys.readouterr().err
