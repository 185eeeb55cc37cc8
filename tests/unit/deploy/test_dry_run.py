"""`kubectl apply --dry-run=server -k` of each overlay against a lab API server, as against a
cluster that has the Gateway API CRDs (the user's to install, deploy/README.md): every object
passes the server's admission (schema, field validation, RBAC objects) and nothing is stored."""

from __future__ import annotations

from pathlib import Path

import pytest

from identity.system import SYSTEM_NAMESPACE
from lab import gateway_crds
from tests.unit.deploy.rendered import DEPLOY, KUBECTL, OVERLAYS
from tests.unit.lab.apiserver.test_kubectl_gateway_api import FreshKubectl, bare_kubeconfig

__all__ = ["bare_kubeconfig"]  # the fixture, shared


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_server_dry_run_admits_every_object_and_stores_none(
    overlay: str, bare_kubeconfig: Path, tmp_path: Path
) -> None:
    k = FreshKubectl(KUBECTL, bare_kubeconfig, tmp_path)
    k.out("apply", "-f", str(gateway_crds.CRD_DIR))
    k.out("wait", "--for", "condition=established", "crd", "--all", "--timeout=10s")
    # A server dry run creates nothing, so the objects in tulle-system need the Namespace to
    # exist, as on a cluster (a real apply creates it first: kubectl orders Namespaces first).
    k.out("create", "namespace", SYSTEM_NAMESPACE)
    out = k.out("apply", "--dry-run=server", "-k", str(DEPLOY / "overlays" / overlay))
    for line in ("daemonset.apps/tulle-agent created (server dry run)",
                 "daemonset.apps/tulle-waypoint created (server dry run)",
                 "deployment.apps/tulle-controlplane created (server dry run)",
                 "deployment.apps/tulle-controller created (server dry run)",
                 "deployment.apps/tulle-relay created (server dry run)",
                 "service/tulle-relay created (server dry run)",
                 "role.rbac.authorization.k8s.io/tulle-controller created (server dry run)",
                 "clusterrole.rbac.authorization.k8s.io/tulle-agent created (server dry run)",
                 "gatewayclass.gateway.networking.k8s.io/tulle created (server dry run)",
                 f"namespace/{SYSTEM_NAMESPACE} configured (server dry run)"):  # its labels
        assert line in out, out
    assert "error" not in out.lower()
    missing = k.run("get", "daemonset", "tulle-agent", "-n", SYSTEM_NAMESPACE, ok=False)
    assert missing.returncode != 0 and "NotFound" in missing.stderr


def test_the_gateway_class_needs_the_gateway_api_crds(
    bare_kubeconfig: Path, tmp_path: Path
) -> None:
    """Without Gateway API on the cluster the apply says which kind it cannot place."""
    k = FreshKubectl(KUBECTL, bare_kubeconfig, tmp_path)
    refused = k.run("apply", "--dry-run=server", "-k", str(DEPLOY / "overlays" / "production"),
                    ok=False)
    assert refused.returncode != 0
    assert 'no matches for kind "GatewayClass" in version "gateway.networking.k8s.io/v1"' in (
        refused.stderr)
