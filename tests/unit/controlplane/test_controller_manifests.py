"""deploy/controller and `python -m controlplane.controller`'s flags: the Deployment's args
parse and turn leader election on with client-go's durations; names agree with the code (the
account, the Lease the Role names, the metrics port); bad flags are refused clearly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from controlplane.controller import ACCOUNT, LEASE_NAME
from controlplane.controller.__main__ import (
    METRICS_PORT,
    default_identity,
    election_config,
    main,
    parser,
    seconds,
)
from identity.system import SYSTEM_NAMESPACE
from lab.apiserver.identities import MANIFESTS

DEPLOY = Path(__file__).resolve().parents[3] / "deploy" / "controller"


def _docs(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((DEPLOY / name).read_text()) if d]


def _one(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    [found] = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return found


def test_the_deployment_runs_two_candidates_with_client_go_s_durations() -> None:
    deployment = _one(_docs("controller.yaml"), "Deployment", "tulle-controller")
    assert deployment["spec"]["replicas"] == 2
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == ACCOUNT
    [container] = pod["containers"]
    assert container["command"] == ["python3", "-m", "controlplane.controller"]
    args = parser().parse_args(container["args"])
    assert args.leader_elect and args.kubeconfig is None and args.namespace == SYSTEM_NAMESPACE
    config = election_config(args)
    assert (config.lease_duration, config.renew_deadline, config.retry_period) == (15, 10, 2)
    assert args.metrics == ("0.0.0.0", METRICS_PORT)
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {"metrics": METRICS_PORT}
    assert [e["name"] for e in container["env"]] == ["POD_NAME"]


def test_the_role_names_the_lease_and_the_lab_seeds_it() -> None:
    assert DEPLOY / "rbac.yaml" in MANIFESTS
    docs = _docs("rbac.yaml")
    role = _one(docs, "Role", ACCOUNT)
    assert role["metadata"]["namespace"] == SYSTEM_NAMESPACE
    by_name = [r for r in role["rules"] if r.get("resourceNames")]
    assert by_name == [{"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
                        "resourceNames": [LEASE_NAME], "verbs": ["get", "update"]}]
    for binding in (d for d in docs if d["kind"].endswith("Binding")):
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": ACCOUNT,
                                        "namespace": SYSTEM_NAMESPACE}]
        _one(docs, binding["roleRef"]["kind"], binding["roleRef"]["name"])
    cluster = _one(docs, "ClusterRole", ACCOUNT)
    verbs = {v for r in cluster["rules"] for v in r["verbs"]}
    assert verbs == {"list", "watch", "patch", "create", "update", "delete"}  # no get
    # update and delete only for the Gateways' Services (controlplane/gatewayservice)
    assert {res for r in cluster["rules"] if {"update", "delete"} & set(r["verbs"])
            for res in r["resources"]} == {"services"}
    writes = {res for r in cluster["rules"] if "patch" in r["verbs"] for res in r["resources"]}
    assert all(res.endswith("/status") for res in writes)


@pytest.mark.parametrize(("text", "value"), [("15", 15.0), ("15s", 15.0), ("1.5s", 1.5),
                                             ("500ms", 0.5), ("1m", 60.0)])
def test_durations(text: str, value: float) -> None:
    assert seconds(text) == value


@pytest.mark.parametrize("text", ["", "0s", "-1s", "15h", "soon", "1.s"])
def test_bad_durations_are_refused(text: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        parser().parse_args([f"--leader-elect-lease-duration={text}"])
    assert exited.value.code == 2
    assert "is not a positive duration" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--leader-elect-lease-duration=10s"], "greater than the renew deadline"),
        (["--leader-elect-retry-period=9s"], "retry period"),
        (["--leader-elect-identity="], "identity must not be empty"),
    ],
)
def test_unsafe_election_settings_exit_before_connecting(
    argv: list[str], message: str, caplog: pytest.LogCaptureFixture
) -> None:
    assert main([*argv, "--kubeconfig=/nonexistent", "--metrics=127.0.0.1:0"]) == 2
    assert message in caplog.text
    assert "/nonexistent" not in caplog.text  # refused before any connection


def test_a_bad_system_namespace_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        parser().parse_args(["--system-namespace=Bad_NS"])
    assert exited.value.code == 2
    assert "Bad_NS" in capsys.readouterr().err


def test_a_missing_kubeconfig_is_a_clear_error(caplog: pytest.LogCaptureFixture) -> None:
    assert main(["--kubeconfig=/nonexistent/kubeconfig", "--metrics=127.0.0.1:0"]) == 2
    assert "--kubeconfig /nonexistent/kubeconfig" in caplog.text


def test_the_default_identity_is_the_pod_name_and_a_random_suffix() -> None:
    one, two = default_identity({"POD_NAME": "tulle-controller-abc"}), default_identity(
        {"POD_NAME": "tulle-controller-abc"})
    assert one.startswith("tulle-controller-abc_") and one != two
