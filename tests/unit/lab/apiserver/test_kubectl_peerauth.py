"""kubectl installs Tulle's own CRD (deploy/crds/tulle) on a lab API server that has none,
as on any cluster, then applies and lists PeerAuthentications."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab import gateway_crds
from tests.unit.lab.apiserver.test_kubectl import _binaries
from tests.unit.lab.apiserver.test_kubectl_gateway_api import FreshKubectl, bare_kubeconfig

__all__ = ["bare_kubeconfig"]  # the fixture, shared

POLICY = """\
apiVersion: security.tulle.io/v1
kind: PeerAuthentication
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  mtls: {mode: STRICT}
  portLevelMtls:
    8080: {mode: DISABLE}
"""

NO_SELECTOR = """\
apiVersion: security.tulle.io/v1
kind: PeerAuthentication
metadata: {name: web}
spec:
  mtls: {mode: STRICT}
  portLevelMtls:
    8080: {mode: DISABLE}
"""


@pytest.mark.parametrize("binary", [p for p in _binaries() if p.id in ("pypi", "1.27")])
def test_kubectl_installs_the_crd_then_applies_and_lists_policies(
    binary: Path, bare_kubeconfig: Path, tmp_path: Path
) -> None:
    k = FreshKubectl(binary, bare_kubeconfig, tmp_path)
    applied = k.out("apply", "-f", str(gateway_crds.TULLE_CRD_DIR))
    assert "peerauthentications.security.tulle.io created" in applied
    k.out("wait", "--for", "condition=established", "crd", "--all", "--timeout=10s")
    source = tmp_path / "policy.yaml"
    source.write_text(NO_SELECTOR)
    refused = k.run("apply", "-f", str(source), ok=False)
    assert refused.returncode != 0
    assert "spec.portLevelMtls: requires spec.selector with matchLabels" in refused.stderr
    source.write_text(POLICY)
    created = k.out("apply", "-f", str(source))
    assert "peerauthentication.security.tulle.io/web created" in created
    rows = k.out("get", "peerauthentications").splitlines()
    assert rows[0].split() == ["NAME", "MODE", "AGE"]
    assert rows[1].split()[:2] == ["web", "STRICT"]
    assert k.out("get", "pa", "web", "-o", "jsonpath={.spec.portLevelMtls.8080.mode}") == (
        "DISABLE"
    )
