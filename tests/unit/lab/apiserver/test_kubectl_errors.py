"""kubectl's errors against the lab read as on a cluster, for each verb of issue 10 item 2
(newest kubectl, 1.32 and 1.27, as in test_kubectl)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from lab.store import Store
from tests.unit.lab.apiserver.test_kubectl import Kubectl, _binaries

# kubectl frames a 404 differently per verb and version; the server's part is the same.
MISSING = 'deployments.apps "nope" not found'

BAD_REPLICAS = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: typed}
spec:
  replicas: "three"
  selector: {matchLabels: {app: typed}}
  template:
    metadata: {labels: {app: typed}}
    spec: {containers: [{name: c, image: x}]}
"""


@pytest.mark.parametrize("binary", _binaries())
def test_kubectl_errors_read_as_a_clusters(
    binary: Path, lab: tuple[Store, Path, Callable[[str], Path]], tmp_path: Path
) -> None:
    _, kubeconfig, _ = lab
    k = Kubectl(binary, kubeconfig, tmp_path)

    def fails(*args: str, env: dict[str, str] | None = None) -> str:
        done = k.run(*args, ok=False, env=env)
        assert done.returncode != 0, f"kubectl {' '.join(args)} succeeded: {done.stdout}"
        return done.stderr

    # Every verb that names a missing object says so in the cluster's words.
    assert f"Error from server (NotFound): {MISSING}" in fails("get", "deploy", "nope")
    for args in (
        ("get", "deploy", "nope"),
        ("describe", "deploy", "nope"),
        ("delete", "deploy", "nope"),
        ("label", "deploy", "nope", "a=b"),
        ("annotate", "deploy", "nope", "a=b"),
        ("patch", "deploy", "nope", "-p", '{"spec":{}}'),
        ("wait", "--for=condition=Available", "deploy/nope", "--timeout=2s"),
        ("rollout", "status", "deploy/nope", "--timeout=2s"),
    ):
        assert MISSING in fails(*args), args
    assert MISSING in fails("edit", "deploy", "nope", env={"EDITOR": "true"})
    # Older kubectl scale words a 404 itself ("no objects passed to scale").
    scale = fails("scale", "deploy", "nope", "--replicas=2")
    assert MISSING in scale or "no objects passed to scale" in scale
    assert 'Error from server (NotFound): namespaces "nope" not found' in fails(
        "delete", "ns", "nope"
    )

    # Creating what exists, JSON (create -f) and protobuf (typed create) alike.
    exists = fails("create", "namespace", "default")
    assert 'Error from server (AlreadyExists): namespaces "default" already exists' in exists
    k.out("create", "deployment", "web", "--image=nginx")
    again = fails("create", "deployment", "web", "--image=nginx")
    assert 'deployments.apps "web" already exists' in again
    nons = fails("create", "configmap", "c", "-n", "nons", "--from-literal=a=b")
    assert 'namespaces "nons" not found' in nons

    # A value of the wrong type: Go's decoder's words, whether applied or diffed.
    (tmp_path / "typed.yaml").write_text(BAD_REPLICAS)
    decoding = (
        'Deployment in version "v1" cannot be handled as a Deployment: json: cannot unmarshal '
        "string into Go struct field DeploymentSpec.spec.replicas of type int32"
    )
    applied = fails("apply", "-f", str(tmp_path / "typed.yaml"))
    assert "Error from server (BadRequest)" in applied and decoding in applied
    assert decoding in fails("apply", "--server-side", "-f", str(tmp_path / "typed.yaml"))

    # A kind the lab does not serve: the server's 404, with nothing of ours in it.
    pdb = fails("create", "poddisruptionbudget", "pdb", "--selector=app=web", "--min-available=1")
    assert pdb.strip().endswith("the server could not find the requested resource"), pdb
    explain = k.run("explain", "deployment.spec.nope", ok=False)
    assert 'field "nope" does not exist' in explain.stderr
    unknown = fails("get", "nopes")
    assert 'the server doesn\'t have a resource type "nopes"' in unknown
